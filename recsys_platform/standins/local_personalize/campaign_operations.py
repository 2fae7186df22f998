"""Campaigns (what GetRecommendations serves) and batch inference jobs."""

from __future__ import annotations

import time
from collections.abc import Callable

from recsys_platform.standins.local_personalize import lake_paths
from recsys_platform.standins.local_personalize.arns import make_arn, parse_arn
from recsys_platform.standins.local_personalize.errors import InvalidInputException, ResourceInUseException
from recsys_platform.standins.local_personalize.job_runner import ACTIVE, JobContext, is_transient
from recsys_platform.standins.local_personalize.resource_kinds import ResourceOperations

MAX_BATCH_RESULTS = 500
# The service updates ACTIVE and CREATE FAILED campaigns; a failed update may be retried too.
UPDATABLE = (ACTIVE, "CREATE FAILED", "UPDATE FAILED")


class CampaignOperations(ResourceOperations):
    # ---- campaigns -------------------------------------------------------------------------------

    def create_campaign(self, params: dict, region: str) -> dict:
        version = self._get_active("solution_version", params["solutionVersionArn"], "solutionVersionArn")
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
        solution = params.get("solutionArn")
        if solution:
            parse_arn(solution, "solution", "solutionArn")
        return self._list("campaign", region, params, lambda r: not solution or r["solutionArn"] == solution)

    def update_campaign(self, params: dict, region: str) -> dict:
        arn = params["campaignArn"]
        with self.store.locked():
            campaign = self._get("campaign", arn, "campaignArn")
            if campaign["status"] not in UPDATABLE:
                raise ResourceInUseException(
                    f"Campaign {arn} is {campaign['status']}; it can be updated when it is "
                    f"{' or '.join(UPDATABLE)}."
                )
            version_arn = params.get("solutionVersionArn") or campaign["solutionVersionArn"]
            self._get_active("solution_version", version_arn, "solutionVersionArn")
            now = time.time()
            campaign["latestCampaignUpdate"] = {
                "solutionVersionArn": version_arn,
                "minProvisionedTPS": params.get("minProvisionedTPS") or campaign["minProvisionedTPS"],
                "creationDateTime": now,
                "lastUpdatedDateTime": now,
                "status": "UPDATE PENDING",
            }
            if params.get("campaignConfig") or campaign.get("campaignConfig"):
                config = params.get("campaignConfig") or campaign["campaignConfig"]
                campaign["latestCampaignUpdate"]["campaignConfig"] = config
            campaign.update(self.runner.new_job_fields("UPDATE"))
            campaign.pop("failureReason", None)
            campaign["lastUpdatedDateTime"] = now
            self.store.put("campaign", campaign)
        self.runner.start("campaign", arn)
        return {"campaignArn": arn}

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
        if params.get("filterArn"):
            raise InvalidInputException("filterArn: filters are not supported by this service.")
        if params.get("batchInferenceJobMode", "BATCH_INFERENCE") != "BATCH_INFERENCE":
            raise InvalidInputException("batchInferenceJobMode: only BATCH_INFERENCE is supported.")
        num_results = params.get("numResults") or 25
        if not 1 <= num_results <= MAX_BATCH_RESULTS:
            raise InvalidInputException(
                f"numResults must be between 1 and {MAX_BATCH_RESULTS}, got {num_results}."
            )
        input_path = params["jobInput"]["s3DataSource"]["path"]
        source = lake_paths.lake_path(self.lake_root, input_path, "jobInput.s3DataSource.path")
        if not source.is_file():
            raise InvalidInputException(
                f"jobInput.s3DataSource.path {input_path!r}: no such object in the lake."
            )
        output_path = params["jobOutput"]["s3DataDestination"]["path"]
        lake_paths.lake_path(self.lake_root, output_path, "jobOutput.s3DataDestination.path")
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
        self._create("batch_inference_job", record)
        return {"batchInferenceJobArn": record["batchInferenceJobArn"]}

    def _run_batch_inference(self, job: dict, context: JobContext) -> None:
        from recsys_platform.standins.local_personalize.batch_inference import run_batch_inference

        model = self.load_model(job["solutionVersionArn"])
        source = lake_paths.lake_path(self.lake_root, job["jobInput"]["s3DataSource"]["path"], "jobInput")
        output_path = job["jobOutput"]["s3DataDestination"]["path"]
        destination = lake_paths.lake_path(self.lake_root, output_path, "jobOutput")
        run_batch_inference(model, source, destination, job["numResults"], context.check)

    def describe_batch_inference_job(self, params: dict, region: str) -> dict:
        return self._describe("batch_inference_job", params["batchInferenceJobArn"], "batchInferenceJobArn")

    def list_batch_inference_jobs(self, params: dict, region: str) -> dict:
        version = params.get("solutionVersionArn")
        if version:
            parse_arn(version, "solution", "solutionVersionArn")
        return self._list(
            "batch_inference_job", region, params, lambda r: not version or r["solutionVersionArn"] == version
        )

