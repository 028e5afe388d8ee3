#!/usr/bin/env python3
"""A Clustergate-2 EM API client, and the checks a CG2 user would make with it.

Written from the EM API's reference (../shared/reference/clustergate-2.md, §4: auth, the
`pod_name` -> PVC storage model, the endpoint table with its parameters, answers and errors, and
the pod semantics of the EM FAQ), the way CG2's own sample client talks to the EM: `requests`,
a `BASE_URL`, a bearer token from `POST /auth/` that is fetched again on a 401, forms and
multipart uploads for the first endpoints, GET with query parameters for the v1 listings and
POST for their later versions.

It knows nothing of the server it talks to beyond that reference. Run by
crates/cli/tests/em_api.rs against a real ground, link and flight agent (real Docker); it exits 0
when every check passed and prints the failing request otherwise.

Environment: EM_BASE_URL, EM_USERNAME, EM_PASSWORD; EM_FIXTURES (a folder holding Dockerfile,
app, input.txt, expected.txt, image.tar and junk.tar); EM_LOAD_IMAGE (the name image.tar was
saved with); EM_UPLINK_LIMIT (the server's per-call uplink limit, in bytes).
"""

import os
import re
import sys
import time

import requests

BASE_URL = os.environ["EM_BASE_URL"].rstrip("/") + "/"
USERNAME = os.environ["EM_USERNAME"]
PASSWORD = os.environ["EM_PASSWORD"]
FIXTURES = os.environ["EM_FIXTURES"]
LOAD_IMAGE = os.environ["EM_LOAD_IMAGE"]
UPLINK_LIMIT = int(os.environ["EM_UPLINK_LIMIT"])

TIMEOUT = 900  # seconds; builds and transfers take a while
TIME_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}$")


class EMClient:
    """The EM API, as CG2's sample client wraps it."""

    def __init__(self, username, password):
        self.username = username
        self.password = password
        self.token = None
        self.refresh = None

    def get_token(self):
        r = requests.post(
            BASE_URL + "auth/",
            data={"username": self.username, "password": self.password},
            timeout=TIMEOUT,
        )
        if r.status_code != 200:
            raise RuntimeError("authentication failed: %s" % r.json().get("detail"))
        self.token = r.json()["access"]
        self.refresh = r.json()["refresh"]

    def headers(self):
        return {"Authorization": "Bearer %s" % self.token}

    def request(self, method, path, **kwargs):
        if self.token is None:
            self.get_token()
        r = requests.request(method, BASE_URL + path, headers=self.headers(), timeout=TIMEOUT, **kwargs)
        if r.status_code == 401:
            self.get_token()
            for _, (_, content) in kwargs.get("files") or []:
                if hasattr(content, "seek"):
                    content.seek(0)
            r = requests.request(method, BASE_URL + path, headers=self.headers(), timeout=TIMEOUT, **kwargs)
        return r

    # ---- files -------------------------------------------------------------------------

    def uplink(self, names, dest_path=None, pod_name=None, pvc_name=None):
        files = [("files", (name, open(os.path.join(FIXTURES, name), "rb"))) for name in names]
        data = {}
        if dest_path is not None:
            data["dest_path"] = dest_path
        if pod_name is not None:
            data["pod_name"] = pod_name
        if pvc_name is not None:
            data["pvc_name"] = pvc_name
        try:
            return self.request("POST", "em/files/uplink", files=files, data=data)
        finally:
            for _, (_, f) in files:
                f.close()

    def list_files(self, **params):
        # v1: GET with query parameters
        return self.request("GET", "em/files/list", params=params)

    def list_files_post(self, **data):
        # later clients: POST
        return self.request("POST", "em/files/list", data=data)

    def downlink(self, filepath, **params):
        params["filepath"] = filepath
        return self.request("GET", "em/files/downlink", params=params)

    def delete(self, filepath, **data):
        data["filepath"] = filepath
        return self.request("POST", "em/files/delete", data=data)

    # ---- images and pods ------------------------------------------------------------------

    def build(self, **data):
        return self.request("POST", "em/pod/image/build", data=data)

    def load(self, path="em/pod/image/load", **data):
        return self.request("POST", path, data=data)

    def images(self, method="POST", path="em/pod/image/list"):
        return self.request(method, path)

    def run(self, path="em/pod/run", **payload):
        # JSON: `args` is a list, `envs` a dict, `ports` a list of ints
        return self.request("POST", path, json=payload)

    def status(self, pod_name=None, method="POST"):
        payload = {} if pod_name is None else {"pod_name": pod_name}
        if method == "GET":
            return self.request("GET", "em/pod/status", params=payload)
        return self.request("POST", "em/pod/status", json=payload)

    def nodes(self, method="GET"):
        return self.request(method, "em/nodes/status")

    def pvcs(self):
        return self.request("POST", "em/pvc/list")

    def delete_pvc(self, pvc_name):
        return self.request("POST", "em/pvc/delete", data={"pvc_name": pvc_name})


# ---- checks ------------------------------------------------------------------------------

CHECKS = 0


def expect(r, status, error=None, message=None):
    """The answer has `status` and, for an error, CG2's `error` name; returns its JSON."""
    global CHECKS
    CHECKS += 1
    try:
        body = r.json()
    except ValueError:
        body = None
    where = "%s %s -> %s %s" % (r.request.method, r.request.url, r.status_code, r.text[:2000])
    assert r.status_code == status, "expected %s: %s" % (status, where)
    if error is not None:
        assert isinstance(body, dict) and body.get("error") == error, "expected %s: %s" % (error, where)
        assert isinstance(body.get("message"), str), where
    if message is not None:
        assert body.get("message") == message, "expected message %r: %s" % (message, where)
    return body


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def find(tree, path):
    """The entry at `path` (`a/b.txt`) in a files/list tree, or None."""
    entries = tree
    node = None
    for part in path.split("/"):
        node = next((e for e in entries if e["name"] == part), None)
        if node is None:
            return None
        entries = node.get("contents") or []
    return node


def check_entry(entry):
    assert entry["type"] in ("file", "directory"), entry
    assert isinstance(entry["name"], str) and entry["name"], entry
    assert isinstance(entry["size"], str) and entry["size"].isdigit(), entry
    assert TIME_FORMAT.match(entry["time"]), entry
    assert isinstance(entry["hash"], int) and -(2 ** 63) <= entry["hash"] < 2 ** 63, entry
    if entry["type"] == "directory":
        for e in entry["contents"]:
            check_entry(e)


def wait_pod(em, pod_name=None, until=("terminated",)):
    """Polls /em/pod/status (scheduled is not running) until the container state is one of
    `until`, or waiting for another reason than being created; returns the state."""
    deadline = time.time() + 600
    while True:
        body = expect(em.status(pod_name), 200, message="Successfully fetched DPhi Pod status")
        state = body["data"]["state"]
        assert len(state) == 1, state
        kind, detail = next(iter(state.items()))
        if kind in until:
            return state
        if kind == "waiting" and detail.get("reason") != "ContainerCreating":
            return state
        assert time.time() < deadline, "pod %s never got to %s: %s" % (pod_name, until, state)
        time.sleep(0.5)


def main():
    # ---- auth (§4.1) ----
    r = requests.post(BASE_URL + "auth/", data={"username": USERNAME, "password": "wrong"}, timeout=TIMEOUT)
    assert r.status_code == 401 and "detail" in r.json(), r.text
    r = requests.post(BASE_URL + "auth/", json={"username": USERNAME}, timeout=TIMEOUT)
    assert r.status_code == 400, r.text
    r = requests.post(BASE_URL + "auth/", json={"username": USERNAME, "password": PASSWORD}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["access"] and tokens["refresh"], tokens
    r = requests.post(BASE_URL + "auth/refresh", json={"refresh": tokens["refresh"]}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    refreshed = r.json()["access"]
    r = requests.get(BASE_URL + "em/nodes/status", headers={"Authorization": "Bearer " + refreshed}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    r = requests.post(BASE_URL + "auth/refresh", data={"refresh": "not-a-token"}, timeout=TIMEOUT)
    assert r.status_code == 401 and "detail" in r.json(), r.text
    r = requests.post(BASE_URL + "auth/refresh", json={"refresh": tokens["access"]}, timeout=TIMEOUT)
    assert r.status_code == 401, "an access token is no refresh token: " + r.text
    r = requests.get(BASE_URL + "em/nodes/status", timeout=TIMEOUT)
    assert r.status_code == 401 and "detail" in r.json(), r.text
    r = requests.get(BASE_URL + "em/nodes/status", headers={"Authorization": "Bearer " + tokens["refresh"]}, timeout=TIMEOUT)
    assert r.status_code == 401, "a refresh token is no access token: " + r.text

    em = EMClient(USERNAME, PASSWORD)
    em.token = "expired"  # the client re-authenticates on a 401
    # ---- nodes (#11; GET, later POST) ----
    for method in ("GET", "POST"):
        body = expect(em.nodes(method), 200, message="Nodes retrieved successfully.")
        nodes = {n["name"]: n["status"] for n in body["data"]}
        assert nodes == {"fpga": "True", "gpu": "True", "mpu1": "True"}, body
    # ---- Nov-2025 namespace endpoint (#8) ----
    expect(em.request("POST", "em/pod/namespace/create"), 200, message="Namespace created successfully")

    # ---- uplink (#1) ----
    expect(em.request("POST", "em/files/uplink", data={"dest_path": "x"}), 400, "NO_FILES")
    big = [("files", ("big.bin", b"\0" * (UPLINK_LIMIT + 1)))]
    body = expect(em.request("POST", "em/files/uplink", files=big), 400, "MAX_UPLINK_SIZE_EXCEEDED")
    assert body["message"].startswith("Total upload size exceeds"), body
    body = expect(em.uplink(["Dockerfile", "app", "Dockerfile.fail"]), 200, message="Successfully uplinked files")
    size = sum(len(fixture(n)) for n in ["Dockerfile", "app", "Dockerfile.fail"])
    assert body["data"]["file_count"] == 3, body
    assert abs(body["data"]["total_size_kb"] - size / 1024) < 0.01, body
    body = expect(em.uplink(["input.txt"], dest_path="in"), 200)
    assert body["data"]["file_count"] == 1, body

    # ---- list (#2; GET v1 and POST) ----
    body = expect(em.list_files(), 200, message="Successfully listed files")
    tree = body["data"]
    for entry in tree:
        check_entry(entry)
    assert find(tree, "Dockerfile")["type"] == "file"
    assert find(tree, "app")["size"] == str(len(fixture("app")))
    assert find(tree, "in")["type"] == "directory"
    assert find(tree, "in/input.txt")["size"] == str(len(fixture("input.txt")))
    tree = expect(em.list_files_post(), 200)["data"]
    assert find(tree, "in/input.txt") is not None
    # pod_name selects another, new and empty volume (§4.2)
    assert expect(em.list_files(pod_name="other"), 200)["data"] == []

    # ---- build (#5) ----
    body = expect(em.build(dockerfile="Dockerfile.fail", context=".", image="willfail"), 400, "BUILD_FAILED",
                  message="Docker build failed")
    assert isinstance(body["log_tail"], list) and 0 < len(body["log_tail"]) <= 100, body
    assert any("building-step" in line for line in body["log_tail"]), body["log_tail"]
    expect(em.build(dockerfile="Dockerfile", context="."), 400)  # `image` is required
    # v1 named the image `image_name`
    expect(em.build(dockerfile="Dockerfile", context=".", image_name="app:v1"), 200,
           message="Docker Image built successfully")

    # ---- image list (#7; POST, v1 GET /em/image/list) ----
    for method, path in (("POST", "em/pod/image/list"), ("GET", "em/image/list")):
        body = expect(em.images(method, path), 200, message="Successfully loaded list of docker images")
        names = [(i["repository"], i["tag"]) for i in body["data"]]
        assert ("app", "v1") in names, body
        assert all("busybox" not in repo for repo, _ in names), "only user-built or loaded images: %s" % body

    # ---- run and status (#9, #10) ----
    expect(em.run(image="app:v1", max_duration=2, node="FPGA"), 200, message="Docker run scheduled successfully")
    state = wait_pod(em)
    assert state["terminated"]["exitCode"] == 0 and state["terminated"]["reason"] == "Completed", state
    body = expect(em.status(method="GET"), 200)  # v1: GET
    assert "terminated" in body["data"]["state"], body

    # ---- downlink (#3) ----
    r = em.downlink("out/result.txt")
    expect(r, 200)
    assert r.content == fixture("expected.txt"), r.content[:200]
    assert "result.txt" in r.headers["Content-Disposition"], r.headers
    expect(em.downlink("out/nope.txt"), 404)
    expect(em.downlink("../../etc/passwd"), 403)
    expect(em.downlink("/"), 400)

    # ---- delete (#4) ----
    expect(em.delete("out/result.txt"), 200, message="File deleted successfully")
    expect(em.delete("out/result.txt"), 400)
    tree = expect(em.list_files(), 200)["data"]
    assert find(tree, "out/result.txt") is None and find(tree, "out") is not None, tree

    # ---- pods that fail, that cannot start, and a busy EM (423) ----
    expect(em.run(image="busybox", command="/bin/sh -c 'echo failing; exit 3'", max_duration=1,
                  node="MPU", pod_name="crash"), 200)
    state = wait_pod(em, "crash")
    assert state["terminated"]["exitCode"] == 3, state
    # v1: /em/pod/execution with `docker_image`
    expect(em.run(path="em/pod/execution", docker_image="nosuchimage", max_duration=1, node="GPU",
                  pod_name="ghost"), 200, message="Docker run scheduled successfully")
    state = wait_pod(em, "ghost")
    assert state["waiting"]["reason"] == "ImagePullBackOff", state
    assert em.status("never-ran").status_code != 200
    expect(em.run(max_duration=1, node="FPGA"), 400)  # `image` is required

    expect(em.run(image="busybox", command="/bin/sh", args=["-c", "sleep 600"], envs={"GREETING": "hi"},
                  ports=[8080], max_duration=1, node="FPGA", pod_name="sleeper"), 200)
    wait_pod(em, "sleeper", until=("running", "terminated"))
    # one request at a time: while the pod holds the EM, other calls are refused
    expect(em.list_files_post(), 423)
    expect(em.uplink(["input.txt"]), 423)
    expect(em.nodes(), 200)
    state = wait_pod(em, "sleeper")
    assert state["terminated"]["exitCode"] != 0, state

    # ---- load (#6): a ground-built archive, in the volume of pod_name "loader" ----
    expect(em.uplink(["junk.tar"], pod_name="loader"), 200)
    body = expect(em.load(tarfile="junk.tar", image="junk:v1", pod_name="loader"), 400, "IMAGE_LOAD_FAILED",
                  message="Docker Image tarfile failed to load")
    assert isinstance(body["log_tail"], list) and body["log_tail"], body
    expect(em.uplink(["image.tar"], pod_name="loader"), 200)
    expect(em.uplink(["input.txt"], dest_path="in", pod_name="loader"), 200)
    # v1 path
    expect(em.load(path="em/image/load", tarfile="image.tar", image=LOAD_IMAGE, pod_name="loader"), 200,
           message="Tar file loaded successfully")
    expect(em.run(image=LOAD_IMAGE, max_duration=2, node="FPGA", pod_name="loader"), 200)
    state = wait_pod(em, "loader")
    assert state["terminated"]["exitCode"] == 0, state
    r = em.downlink("out/result.txt", pod_name="loader")
    expect(r, 200)
    assert r.content == fixture("expected.txt")
    # files under one name are not visible under another (§4.2)
    expect(em.downlink("image.tar"), 404)

    # ---- PVCs (Jan-2026 client): list, then select and delete by pvc_name ----
    loader_pvc = None
    body = expect(em.pvcs(), 200)
    text = repr(body["data"])
    assert "%s-pvc" % USERNAME in text, body
    for candidate in re.findall(r"[a-z0-9][a-z0-9._-]*", text):
        if "loader" in candidate:
            loader_pvc = candidate
    assert loader_pvc, body
    tree = expect(em.list_files_post(pvc_name=loader_pvc), 200)["data"]
    assert find(tree, "out/result.txt") is not None, tree
    expect(em.delete_pvc(loader_pvc), 200)
    assert em.delete_pvc(loader_pvc).status_code in (400, 404)
    assert loader_pvc not in repr(expect(em.pvcs(), 200)["data"])

    print("EM API: all %d checks passed" % CHECKS)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("EM API check failed: %s" % e, file=sys.stderr)
        raise
