"""How answers go on the wire: head and body in one write (a second write wakes the client a second
time, which costs a loopback round trip a context switch), errors included; an HTTP/0.9 request still
gets its body alone."""

from __future__ import annotations

import json
import socket
import socketserver

import pytest


@pytest.fixture
def writes(monkeypatch):
    """What the server writes to its connections (the server runs on a thread of this process)."""
    recorded: list[bytes] = []
    original = socketserver._SocketWriter.write

    def recording(self, data):
        recorded.append(bytes(data))
        return original(self, data)

    monkeypatch.setattr(socketserver._SocketWriter, "write", recording)
    return recorded


def test_an_answer_is_one_write(personalize, writes):
    personalize.list_recipes()
    assert len(writes) == 1
    head, _, body = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body)["recipes"]


def test_an_error_answer_is_one_write(personalize, runtime, writes):
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_campaign(campaignArn="arn:aws:personalize:us-east-1:000000000000:campaign/none")
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.get_recommendations(campaignArn="arn:aws:personalize:us-east-1:000000000000:campaign/none", userId="u")
    assert len(writes) == 2
    for write in writes:
        head, _, body = write.partition(b"\r\n\r\n")
        assert b"x-amzn-ErrorType: ResourceNotFoundException" in head
        assert json.loads(body)["__type"] == "ResourceNotFoundException"


def test_an_http_0_9_request_gets_the_body_alone(server):
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        raw.sendall(b"GET /\r\nHost: localhost\r\n\r\n")  # the standard library reads headers even so
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    assert json.loads(reply)["__type"] == "UnknownOperationException"  # no status line, no headers
