"""Campaigns (what GetRecommendations serves) and batch inference jobs.

Following a solution (`campaignConfig.syncWithLatestSolutionVersion`), as the API reference describes
it: with `true`, `solutionVersionArn` must name the solution as `<solutionArn>/$LATEST`, and the
campaign "automatically updates to use the latest solution version". Here: the campaign deploys the
solution's newest ACTIVE version at once, and each time another version of the solution becomes
ACTIVE (trained FULL or UPDATE, by anyone) the campaign starts an update to it (`UPDATE PENDING` ->
... -> `ACTIVE`, with `latestCampaignUpdate`, serving the previous version meanwhile). A campaign that
is updating when a version finishes moves on when its update settles. `$LATEST` without sync deploys
the newest ACTIVE version once. With `false` (the default) a campaign never moves by itself.
DescribeCampaign shows the version being served in `solutionVersionArn`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from recsys_platform.shared.personalize_facts import LATEST_SOLUTION_VERSION_SUFFIX
from recsys_platform.standins.local_personalize.arns import make_arn
from recsys_platform.standins.local_personalize.errors import InvalidInputException, ResourceInUseException
from recsys_platform.standins.local_personalize.job_runner import ACTIVE, JobContext, is_transient
from recsys_platform.standins.local_personalize.resource_kinds import ResourceOperations

MAX_BATCH_RESULTS = 500
# The service updates ACTIVE and CREATE FAILED campaigns; a failed update may be retried too.
UPDATABLE = (ACTIVE, "CREATE FAILED", "UPDATE FAILED")


def follows_solution(config: dict | None) -> bool:
    return bool((config or {}).get("syncWithLatestSolutionVersion"))


class CampaignOperations(ResourceOperations):
    # ---- campaigns -------------------------------------------------------------------------------

    def latest_active_version(self, solution_arn: str) -> dict | None:
        versions = [
            v for v in self._in_use_by("solution_version", "solutionArn", solution_arn) if v.get("status") == ACTIVE
        ]
        return max(versions, key=lambda v: (v["creationDateTime"], v["solutionVersionArn"]), default=None)

    def _version_to_deploy(self, arn: str, config: dict | None, field: str = "solutionVersionArn") -> dict:
        """The ACTIVE solution version `arn` names (`<solutionArn>/$LATEST`: the newest ACTIVE one)."""
        if arn.endswith(LATEST_SOLUTION_VERSION_SUFFIX):
            solution_arn = arn[: -len(LATEST_SOLUTION_VERSION_SUFFIX)]
            self._get("solution", solution_arn, field)
            latest = self.latest_active_version(solution_arn)
            if latest is None:
                raise InvalidInputException(
                    f"Solution {solution_arn} has no ACTIVE solution version yet: $LATEST names none."
                )
            return latest
        if follows_solution(config):
            raise InvalidInputException(
                f"campaignConfig.syncWithLatestSolutionVersion is true, so {field} must name the solution "
                f"in <solutionArn>{LATEST_SOLUTION_VERSION_SUFFIX} format, not {arn}"
            )
        return self._get_active("solution_version", arn, field)

    def create_campaign(self, params: dict, region: str) -> dict:
        version = self._version_to_deploy(params["solutionVersionArn"], params.get("campaignConfig"))
        record = {
            "name": params["name"],
            "campaignArn": make_arn(region, "campaign", params["name"]),
            "solutionVersionArn": version["solutionVersionArn"],
            "solutionArn": version["solutionArn"],
            "minProvisionedTPS": params.get("minProvisionedTPS") or 1,
            "_region": region,
        }
        if params.get("campaignConfig"):
            record["campaignConfig"] = params["campaignConfig"]
        self._create("campaign", record)
        return {"campaignArn": record["campaignArn"]}

    def _run_campaign(self, campaign: dict, context: JobContext) -> Callable[[dict], None]:
        update = campaign.get("latestCampaignUpdate") if campaign["_job"]["phase"] == "UPDATE" else None
        target = (update or campaign)["solutionVersionArn"]
        self.load_model(target)  # a campaign only goes ACTIVE with a model it can serve

        def apply(record: dict) -> None:
            if update is not None:
                for key in ("solutionVersionArn", "minProvisionedTPS", "campaignConfig"):
                    if update.get(key) is not None:
                        record[key] = update[key]
                version = self.store.get("solution_version", update["solutionVersionArn"])
                record["solutionArn"] = version["solutionArn"] if version else record["solutionArn"]

        return apply

    @staticmethod
    def _mirror_campaign_update(kind: str, record: dict, status: str) -> None:
        """During an update the campaign's latestCampaignUpdate carries the update's own status."""
        updating = record.get("_job", {}).get("phase") == "UPDATE"
        if kind == "campaign" and updating and "latestCampaignUpdate" in record:
            record["latestCampaignUpdate"]["status"] = status
            record["latestCampaignUpdate"]["lastUpdatedDateTime"] = time.time()
            if record.get("failureReason") and status.endswith("FAILED"):
                record["latestCampaignUpdate"]["failureReason"] = record["failureReason"]

    def describe_campaign(self, params: dict, region: str) -> dict:
        return self._describe("campaign", params["campaignArn"], "campaignArn")

    def list_campaigns(self, params: dict, region: str) -> dict:
        return self._list_under("campaign", region, params, "solutionArn", "solution")

    def update_campaign(self, params: dict, region: str) -> dict:
        arn = params["campaignArn"]
        with self.store.locked():
            campaign = self._get("campaign", arn, "campaignArn")
            if campaign["status"] not in UPDATABLE:
                raise ResourceInUseException(
                    f"Campaign {arn} is {campaign['status']}; it can be updated when it is "
                    f"{' or '.join(UPDATABLE)}."
                )
            config = params.get("campaignConfig") or campaign.get("campaignConfig")
            if params.get("solutionVersionArn"):
                version = self._version_to_deploy(params["solutionVersionArn"], config)
            elif follows_solution(config):
                version = self._version_to_deploy(campaign["solutionArn"] + LATEST_SOLUTION_VERSION_SUFFIX, config)
            else:
                version = self._get_active("solution_version", campaign["solutionVersionArn"], "solutionVersionArn")
            self._start_update(campaign, version["solutionVersionArn"], params.get("minProvisionedTPS"), config)
        self.runner.start("campaign", arn)
        return {"campaignArn": arn}

    def _start_update(self, campaign: dict, version_arn: str, min_tps: int | None, config: dict | None) -> None:
        """Record an update of the campaign to `version_arn` (call under the lock, then start the job)."""
        now = time.time()
        campaign["latestCampaignUpdate"] = {
            "solutionVersionArn": version_arn,
            "minProvisionedTPS": min_tps or campaign["minProvisionedTPS"],
            "creationDateTime": now,
            "lastUpdatedDateTime": now,
            "status": "UPDATE PENDING",
        }
        if config:
            campaign["latestCampaignUpdate"]["campaignConfig"] = config
        campaign.update(self.runner.new_job_fields("UPDATE"))
        campaign.pop("failureReason", None)
        campaign["lastUpdatedDateTime"] = now
        self.store.put("campaign", campaign)

    def sync_campaigns(self, solution_arn: str) -> None:
        """Move every campaign that follows `solution_arn` to its newest ACTIVE version, unless it is
        busy (it is looked at again when its own job settles) or serves that version already."""
        started = []
        with self.store.locked():
            latest = self.latest_active_version(solution_arn)
            if latest is None:
                return
            for campaign in self._in_use_by("campaign", "solutionArn", solution_arn):
                if not follows_solution(campaign.get("campaignConfig")) or campaign["status"] not in UPDATABLE:
                    continue
                tried = {campaign["solutionVersionArn"]}  # served, or the one its creation failed with
                if campaign["status"] == "UPDATE FAILED":
                    tried.add((campaign.get("latestCampaignUpdate") or {}).get("solutionVersionArn"))
                if latest["solutionVersionArn"] in tried:
                    continue  # serving it, or moving to it failed: never a retry loop
                self._start_update(campaign, latest["solutionVersionArn"], None, campaign.get("campaignConfig"))
                started.append(campaign["campaignArn"])
        for arn in started:
            self.runner.start("campaign", arn)

    def delete_campaign(self, params: dict, region: str) -> dict:
        arn = params["campaignArn"]
        with self.store.locked():
            record = self._get("campaign", arn, "campaignArn")
            if is_transient(record.get("status")):
                raise ResourceInUseException(f"Campaign {arn} is {record['status']}; wait until it settles.")
            self.store.delete("campaign", arn)
        return {}

    # ---- batch inference -------------------------------------------------------------------------

    def create_batch_inference_job(self, params: dict, region: str) -> dict:
        version = self._get_active("solution_version", params["solutionVersionArn"], "solutionVersionArn")
        if params.get("filterArn"):  # the filter must be usable with this version's dataset group
            self.usable_filter(params["filterArn"], version["datasetGroupArn"])
        if params.get("batchInferenceJobMode", "BATCH_INFERENCE") != "BATCH_INFERENCE":
            raise InvalidInputException("batchInferenceJobMode: only BATCH_INFERENCE is supported.")
        num_results = params.get("numResults") or 25
        if not 1 <= num_results <= MAX_BATCH_RESULTS:
            raise InvalidInputException(
                f"numResults must be between 1 and {MAX_BATCH_RESULTS}, got {num_results}."
            )
        input_path = params["jobInput"]["s3DataSource"]["path"]
        self.lake.object_size(input_path, "jobInput.s3DataSource.path", params["roleArn"])
        output_path = params["jobOutput"]["s3DataDestination"]["path"]
        self.lake.check_output(output_path, "jobOutput.s3DataDestination.path", params["roleArn"])
        record = {
            "jobName": params["jobName"],
            "batchInferenceJobArn": make_arn(region, "batch-inference-job", params["jobName"]),
            "solutionVersionArn": version["solutionVersionArn"],
            "numResults": num_results,
            "jobInput": params["jobInput"],
            "jobOutput": params["jobOutput"],
            "roleArn": params["roleArn"],
            "batchInferenceJobMode": "BATCH_INFERENCE",
            "_region": region,
        }
        if params.get("batchInferenceJobConfig"):
            record["batchInferenceJobConfig"] = params["batchInferenceJobConfig"]
        if params.get("filterArn"):
            record["filterArn"] = params["filterArn"]
        self._create("batch_inference_job", record)
        return {"batchInferenceJobArn": record["batchInferenceJobArn"]}

    def _run_batch_inference(self, job: dict, context: JobContext) -> None:
        from recsys_platform.standins.local_personalize.batch_inference import run_batch_inference

        model = self.load_model(job["solutionVersionArn"])
        allowed_for = None
        if job.get("filterArn"):
            version = self.store.get("solution_version", job["solutionVersionArn"]) or {}
            filter_record = self.usable_filter(job["filterArn"], version.get("datasetGroupArn", ""))
            allowed_for = lambda user, values: self.filter_predicate(filter_record, user, None, values)  # noqa: E731
        output = job["jobOutput"]["s3DataDestination"]
        role = job.get("roleArn")
        with self.lake.object_file(job["jobInput"]["s3DataSource"]["path"], "jobInput", role) as source, \
                self.lake.output_folder(output["path"], "jobOutput", role, output.get("kmsKeyArn")) as destination:
            run_batch_inference(model, source, destination, job["numResults"], context.check, allowed_for)

    def describe_batch_inference_job(self, params: dict, region: str) -> dict:
        return self._describe("batch_inference_job", params["batchInferenceJobArn"], "batchInferenceJobArn")

    def list_batch_inference_jobs(self, params: dict, region: str) -> dict:
        return self._list_under("batch_inference_job", region, params, "solutionVersionArn", "solution")
