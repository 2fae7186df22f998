"""The server is safe to leave running on a developer's machine: it answers only loopback hosts and
pages, copes with bursts of connections, answers malformed requests with 400s that name the problem
(never a path on the machine), stays inside the lake, keeps its state private and never loads a pickle."""

from __future__ import annotations

import http.client
import json
import os
import pickle
import socket
import stat
import threading
import time

import pytest

from recsys_platform_tests.local_personalize.conftest import (
    BUCKET,
    ROLE,
    make_clients,
    wait_for,
    write_interactions,
)


def raw_request(server, path="/", body=b"{}", headers=None, target="AmazonPersonalize.ListRecipes", skip_host=False):
    """One request on a fresh connection; (status, parsed JSON body, response headers)."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    connection.putrequest("POST", path, skip_host=skip_host, skip_accept_encoding=True)
    all_headers = {"Content-Type": "application/x-amz-json-1.1", "Content-Length": str(len(body))}
    if target:
        all_headers["X-Amz-Target"] = target
    all_headers.update(headers or {})
    for name, value in all_headers.items():
        if value is not None:
            connection.putheader(name, value)
    connection.endheaders(body)
    answer = connection.getresponse()
    payload = answer.read()
    connection.close()
    return answer.status, json.loads(payload), dict(answer.getheaders())


# ---- DNS rebinding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "skip_host", "refused"),
    [
        ({"Host": "evil.example:8765"}, True, "Host 'evil.example:8765' is not a loopback"),
        ({"Host": "127.0.0.1.evil.example"}, True, "is not a loopback"),
        ({"Host": "localhost@evil.example"}, True, "is not a loopback"),
        ({}, True, "no Host header"),
        ({"Origin": "http://evil.example"}, False, "Origin 'http://evil.example' is not a loopback page"),
        ({"Origin": "null"}, False, "Origin 'null'"),
        ({"Origin": "file://"}, False, "is not a loopback page"),
    ],
)
def test_requests_from_other_hosts_or_pages_are_refused(server, headers, skip_host, refused):
    for path, target in (("/", "AmazonPersonalize.ListRecipes"), ("/recommendations", None), ("/events", None)):
        status, error, answer_headers = raw_request(server, path, headers=headers, target=target, skip_host=skip_host)
        assert status == 403
        assert error["__type"] == "AccessDeniedException" and refused in error["message"]
        assert answer_headers["x-amzn-ErrorType"] == "AccessDeniedException"


def test_a_second_host_header_is_refused(server):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    connection.putrequest("POST", "/", skip_host=True)
    for name, value in (("Host", "localhost"), ("Host", "evil.example"), ("X-Amz-Target", "AmazonPersonalize.ListRecipes"),
                        ("Content-Length", "2")):
        connection.putheader(name, value)
    connection.endheaders(b"{}")
    answer = connection.getresponse()
    error = json.loads(answer.read())
    assert answer.status == 403 and "more than one Host header" in error["message"]
    connection.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "localhost:1"},
        {"Host": "LOCALHOST"},
        {"Host": "127.0.0.1"},
        {"Host": "127.1.2.3:80"},
        {"Host": "[::1]:8765"},
        {"Origin": "http://localhost:3000"},
        {"Origin": "https://127.0.0.1"},
    ],
)
def test_loopback_hosts_and_pages_are_answered(server, headers):
    status, answer, _ = raw_request(server, headers=headers, skip_host="Host" in headers)
    assert status == 200 and [r["name"] for r in answer["recipes"]]


def test_boto3_is_answered(personalize):
    assert personalize.list_recipes()["recipes"]  # Host: 127.0.0.1:<port>, as boto3 sends it


# ---- bursts and malformed requests ------------------------------------------------------------------


def test_a_burst_of_fresh_connections_is_accepted(server):
    """200 clients connecting at the same instant: none is reset (a listen backlog of 5 reset 18 of 50)."""
    count = 200
    barrier = threading.Barrier(count)
    outcomes: list[object] = []

    def one() -> None:
        barrier.wait()
        try:
            outcomes.append(raw_request(server)[0])
        except OSError as error:  # ConnectionResetError, refused, timed out ...
            outcomes.append(repr(error))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [200] * count


def nested(depth: int) -> bytes:
    return b'{"datasetGroupArn": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("path", "target", "body", "headers", "code", "named"),
    [
        ("/", "AmazonPersonalize.ListDatasets", nested(100_000), {}, "SerializationException", "deeper than 32"),
        ("/recommendations", None, nested(5_000), {}, "SerializationException", "deeper than 32"),
        ("/recommendations", None, json.dumps({"campaignArn": "arn:aws:personalize:us-east-1:000000000000:campaign/c", "userId": "u", "numResults": 2.5}).encode(), {}, "SerializationException", "numResults must be an integer, got 2.5"),
        ("/recommendations", None, b'{"userId": "u", "numResults": "5"}', {}, "SerializationException", "numResults must be an integer"),
        ("/", "AmazonPersonalize.ListDatasetGroups", b'{"maxResults": true}', {}, "SerializationException", "maxResults must be an integer, got true"),
        ("/", "AmazonPersonalize.ListDatasetGroups", b'{"maxResults": NaN}', {}, "SerializationException", "not JSON"),
        ("/", "AmazonPersonalize.ListDatasetGroups", b"[1, 2]", {}, "SerializationException", "JSON object"),
        ("/", "AmazonPersonalize.CreateDatasetGroup", b'{"name": {"nested": 1}}', {}, "SerializationException", "name must be a string"),
        ("/", "AmazonPersonalize.ListDatasetGroups", b"{}", {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/" + "x" * 300 + "/personalize/aws4_request, SignedHeaders=host, Signature=abc"}, "IncompleteSignatureException", "is not an AWS region name"),
        ("/", "AmazonPersonalize.ListDatasetGroups", b"{}", {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/../../etc/personalize/aws4_request"}, "IncompleteSignatureException", "is not an AWS region name"),
        ("/", "AmazonPersonalize.ListDatasetGroups", b"{}", {"Authorization": "x" * 5000}, "IncompleteSignatureException", "at most 4096"),
    ],
)
def test_malformed_requests_get_400s_that_name_the_problem(server, state_dir, path, target, body, headers, code, named):
    status, error, answer_headers = raw_request(server, path, body=body, headers=headers, target=target)
    assert status == 400, error
    assert error["__type"] == code and named in error["message"]
    assert answer_headers["x-amzn-ErrorType"] == code
    assert str(state_dir) not in error["message"]


def test_a_chunked_body_is_refused_not_read_as_empty(server):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    body = json.dumps({"name": "from-chunks"}).encode()
    connection.request(
        "POST", "/", body=iter([body]), encode_chunked=True,
        headers={"X-Amz-Target": "AmazonPersonalize.CreateDatasetGroup", "Transfer-Encoding": "chunked"},
    )
    answer = connection.getresponse()
    error = json.loads(answer.read())
    assert answer.status == 400 and error["__type"] == "SerializationException"
    assert "Transfer-Encoding 'chunked' is not supported" in error["message"]
    assert answer.getheader("Connection") == "close"  # the unread body cannot be taken for a request
    connection.close()
    personalize, _ = make_clients(server.endpoint_url)
    assert personalize.list_dataset_groups()["datasetGroups"] == []  # nothing was created from it


def test_other_methods_get_an_aws_error_not_an_html_page(server):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    connection.request("GET", "/")
    answer = connection.getresponse()
    error = json.loads(answer.read())
    assert answer.status == 400 and error["__type"] == "UnknownOperationException" and "GET /" in error["message"]
    connection.close()


def test_internal_errors_are_answered_without_details(server, state_dir, personalize, caplog):
    def broken(params, region):
        raise OSError(f"[Errno 5] Input/output error: '{state_dir}/schema/x.json'")

    server._server.operations["ListSchemas"] = broken  # a failure the service cannot foresee
    with pytest.raises(personalize.exceptions.ClientError) as raised:
        personalize.list_schemas()
    error = raised.value.response["Error"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error["Code"] == "InternalFailure" and "server log" in error["Message"]
    assert str(state_dir) not in error["Message"] and "Errno" not in error["Message"]
    request_id = raised.value.response["ResponseMetadata"]["RequestId"]
    assert request_id in error["Message"] and any(request_id in r.getMessage() for r in caplog.records)


def test_messages_and_failure_reasons_name_no_paths(personalize, runtime, shop, lake, state_dir, tmp_path):
    group = shop.dataset_group()
    dataset = shop.interactions_dataset(group)
    with pytest.raises(personalize.exceptions.InvalidInputException) as raised:
        shop.import_csv(dataset, "missing.csv", "missing")
    assert "s3://shop-lake/missing.csv" in str(raised.value) and str(lake) not in str(raised.value)
    write_interactions(lake / BUCKET / "interactions.csv")
    assert shop.import_csv(dataset, "interactions.csv", "import")["status"] == "ACTIVE"
    for part in (state_dir / "datasets").rglob("*.parquet"):
        part.write_bytes(b"PAR1 damaged")  # the stored rows become unreadable
    version = shop.train(shop.solution(group))
    assert version["status"] == "CREATE FAILED" and "internal error" in version["failureReason"]
    assert str(tmp_path) not in version["failureReason"]


# ---- the lake -------------------------------------------------------------------------------------


def test_links_that_leave_the_lake_are_refused(personalize, shop, lake, tmp_path, state_dir):
    outside = write_interactions(tmp_path / "outside" / "interactions.csv")
    (lake / BUCKET / "folder").mkdir(parents=True)
    (lake / BUCKET / "secret.csv").symlink_to(outside)
    (lake / BUCKET / "folder" / "part.csv").symlink_to(outside)
    (lake / BUCKET / "state").symlink_to(state_dir, target_is_directory=True)
    write_interactions(lake / BUCKET / "real.csv")
    (lake / BUCKET / "alias.csv").symlink_to(lake / BUCKET / "real.csv")  # stays inside: fine
    dataset = shop.interactions_dataset(shop.dataset_group())
    for key, named in (("secret.csv", "leads outside the lake"), ("folder/", "'part.csv' is a symbolic link"),
                       ("state/.lock", "leads outside the lake")):
        with pytest.raises(personalize.exceptions.InvalidInputException, match=named) as raised:
            shop.import_csv(dataset, key, "escape")
        assert str(tmp_path) not in str(raised.value)
    assert shop.import_csv(dataset, "alias.csv", "inside")["status"] == "ACTIVE"


def test_batch_output_never_leaves_the_lake(personalize, shop, lake, tmp_path):
    _, version = shop.trained_group()
    (tmp_path / "outside").mkdir()
    (lake / BUCKET / "out").symlink_to(tmp_path / "outside", target_is_directory=True)
    (lake / BUCKET / "users.json").write_text(json.dumps({"userId": "u1"}) + "\n")
    request = dict(
        solutionVersionArn=version["solutionVersionArn"],
        jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/users.json"}},
        roleArn=ROLE,
    )
    with pytest.raises(personalize.exceptions.InvalidInputException, match="leads outside the lake"):
        personalize.create_batch_inference_job(
            jobName="escape", jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/out/"}}, **request
        )
    # a link planted after the job was accepted is caught when the job writes
    arn = personalize.create_batch_inference_job(
        jobName="late", jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/later/"}}, **request
    )["batchInferenceJobArn"]
    (lake / BUCKET / "later").symlink_to(tmp_path / "outside", target_is_directory=True)
    job = wait_for(lambda: personalize.describe_batch_inference_job(batchInferenceJobArn=arn), "batchInferenceJob")
    assert job["status"] == "CREATE FAILED" and "leads outside the lake" in job["failureReason"]
    assert list((tmp_path / "outside").iterdir()) == []


# ---- the state folder -------------------------------------------------------------------------------


def private_modes(root) -> list[str]:
    """Every file or folder under `root` that another account could read."""
    exposed = []
    for folder, _, files in os.walk(root):
        for path in [folder, *(os.path.join(folder, name) for name in files)]:
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                exposed.append(f"{os.path.relpath(path, root)} {oct(stat.S_IMODE(mode))}")
    return exposed


def test_state_is_private_to_its_owner(personalize, runtime, events, shop, lake, state_dir):
    old_umask = os.umask(0o022)  # the usual umask: what the state would get by default
    try:
        group, version = shop.trained_group("aws-user-personalization-v2")
        campaign = shop.campaign(version["solutionVersionArn"])
        _, tracking_id = shop.event_tracker(group)
        events.put_events(trackingId=tracking_id, userId="u1", sessionId="s",
                          eventList=[{"eventType": "view", "itemId": "i1", "sentAt": time.time()}])
        assert runtime.get_recommendations(campaignArn=campaign, userId="u1")["itemList"]
    finally:
        os.umask(old_umask)
    files = [p for p in state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "model.npz" for p in files) and any(p.suffix == ".parquet" for p in files)
    assert any(p.name == "events.jsonl" for p in files) and any(p.name == ".lock" for p in files)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert private_modes(state_dir) == []


def test_state_left_readable_by_an_earlier_version_is_made_private(tmp_path, start_server, state_dir):
    (state_dir / "dataset_group").mkdir(parents=True)
    old = state_dir / "dataset_group" / "old.json"
    old.write_text("{}")
    os.chmod(state_dir / "dataset_group", 0o755)
    os.chmod(old, 0o644)
    start_server()
    assert private_modes(state_dir) == []


def test_a_pickled_model_is_never_loaded(shop, state_dir, start_server, tmp_path):
    """Models are npz + JSON; a model.pkl (what earlier versions wrote, or what an attacker who can write
    the state folder plants) is refused with a reason, and its code never runs."""
    _, version = shop.trained_group()
    campaign = shop.campaign(version["solutionVersionArn"])
    witness = tmp_path / "pickle-ran"

    class RunsCode:
        def __reduce__(self):
            return (open, (str(witness), "w"))

    for model_file in (state_dir / "models").rglob("model.npz"):
        model_file.with_name("model.pkl").write_bytes(pickle.dumps(RunsCode()))
        model_file.unlink()
    _, runtime = make_clients(start_server().endpoint_url)  # a fresh server: nothing cached
    with pytest.raises(runtime.exceptions.ClientError) as raised:
        runtime.get_recommendations(campaignArn=campaign, userId="u1")
    assert raised.value.response["Error"]["Code"] == "InternalFailure"
    assert "stored models as pickles; they are not loaded" in raised.value.response["Error"]["Message"]
    assert not witness.exists()


def test_connections_beyond_the_limit_are_refused_quickly(server, monkeypatch):
    """Past MAX_CONNECTIONS a client gets a 503 at once instead of a thread that never frees."""
    from recsys_platform.standins.local_personalize import server as server_module

    limit = 3
    monkeypatch.setattr(server._server, "_connections", threading.BoundedSemaphore(limit))
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", limit)
    idle = [socket.create_connection((server.host, server.port), timeout=10) for _ in range(limit)]
    deadline = time.monotonic() + 10
    while server._server._connections._value:  # until the server holds a thread for each of them
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        # the answer comes before the request is read: read it without sending one
        with socket.create_connection((server.host, server.port), timeout=10) as extra:
            reply = b""
            while chunk := extra.recv(4096):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"Connection: close" in head
        assert json.loads(body)["__type"] == "ServiceUnavailableException"
    finally:
        for connection in idle:
            connection.close()
    deadline = time.monotonic() + 10
    while True:  # the threads end once their clients leave, and requests are served again
        try:
            if raw_request(server)[0] == 200:
                break
        except OSError:  # refused before the request was sent
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_long_arns_are_looked_up_not_crashed_on(personalize):
    """ARNs name state files; a 256-character ARN of characters that quote to three each must not make
    a file name longer than the file system allows (a 500 that showed the path, before)."""
    arn = "arn:aws:personalize:us-east-1:000000000000:dataset-group/" + "%" * 190
    with pytest.raises(personalize.exceptions.ResourceNotFoundException, match="does not exist"):
        personalize.describe_dataset_group(datasetGroupArn=arn)
    name = "n" * 63
    created = personalize.create_dataset_group(name=name)["datasetGroupArn"]
    assert personalize.describe_dataset_group(datasetGroupArn=created)["datasetGroup"]["name"] == name


def test_a_client_that_sends_nothing_is_let_go(server, monkeypatch):
    """An idle or stalled connection holds a thread only until IDLE_TIMEOUT (120 s; shortened here)."""
    from recsys_platform.standins.local_personalize import server as server_module

    monkeypatch.setattr(server_module._Handler, "timeout", 0.5)
    with socket.create_connection((server.host, server.port), timeout=10) as silent:
        silent.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\n")  # and then nothing more
        started = time.monotonic()
        assert silent.recv(4096) == b""  # the server closed it
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431, "SerializationException"),
        (b"BREW / HTTP/1.1\r\nHost: localhost\r\n\r\n", 501, "UnknownOperationException"),
        (b"POST /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "SerializationException"),
    ],
)
def test_requests_the_http_layer_refuses_get_json_errors(server, request_bytes, status, code):
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        raw.sendall(request_bytes)
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()) or head.startswith(f"HTTP/1.0 {status}".encode())
    assert json.loads(body)["__type"] == code
