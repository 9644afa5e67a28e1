"""A loopback Hugging Face Hub: the part of the Hub HTTP API that ``push_to_hub`` and ``load_dataset`` use.

It lets tests publish a dataset for real (``huggingface_hub`` and ``datasets`` unmodified, talking HTTP)
and load it back, with no network. Point a client at it with ``HF_ENDPOINT=<server.url>`` (read at import
time by ``huggingface_hub.constants``, so run the client in a subprocess or set it before importing) and
``HF_HUB_DISABLE_XET=1`` (clients would otherwise upload through Xet storage without asking the server).

What it models, because the clients depend on it:

* repositories with a real commit history: every commit gets a 40-hex sha that ``repo_info``, ``tree``,
  ``paths-info`` and ``resolve`` accept as a revision (``push_to_hub`` lists files at the parent sha);
  a commit with a stale ``parentCommit`` answers 412, as the Hub does;
* the upload protocol: ``preupload`` answers ``lfs`` for binary files (``datasets`` deletes its temporary
  Parquet shard right after preupload, so the bytes must go through the LFS batch + PUT), ``regular``
  for text; the LFS batch API, uploads checked against their sha256, and the NDJSON commit API;
* the error contract: 404 + ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``,
  409 with a JSON ``url`` for an existing repository, 401 without the token for writes, private
  repositories invisible without it;
* downloads with content-dependent ETags (git blob sha1 for regular files, sha256 for LFS files),
  ``X-Repo-Commit``, ``Content-Length`` and byte ranges (``HfFileSystem`` reads with ``Range``).

Repository types ``model``, ``dataset`` and ``space`` share these routes; a metric Space is a ``space`` repository,
and ``evaluate.load("<user>/<name>")`` downloads ``<name>.py`` through ``/spaces/<user>/<name>/resolve/<rev>/``
(after asking for a version tag the server does not have: the 404 sends it to ``main``).

Not modelled: pagination (everything fits one page), pull requests, branches other than ``main``, Xet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def git_oid(self) -> str:
        # for LFS files git stores a pointer; its sha1 is the blob id the Hub reports
        return git_blob_sha1(self.pointer) if self.lfs else git_blob_sha1(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Commit:
    sha: str
    parent: str | None
    tree: dict[str, Blob]
    title: str
    date: float


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)

    def commit(self, branch: str, tree: dict[str, Blob], title: str) -> Commit:
        parent = self.branches.get(branch)
        digest = hashlib.sha1()
        digest.update(f"{self.repo_type}/{self.repo_id}\n{parent}\n{title}\n{time.time_ns()}\n".encode())
        for path in sorted(tree):
            digest.update(f"{path}\0{tree[path].git_oid}\n".encode())
        commit = Commit(digest.hexdigest(), parent, dict(tree), title, time.time())
        self.commits[commit.sha] = commit
        self.branches[branch] = commit.sha
        return commit


class HubState:
    """Repositories and LFS objects of one server; every access holds ``lock``."""

    def __init__(self, token: str | None, user: str = "tester"):
        self.token = token
        self.user = user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) for debugging failed tests


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackHub._Server

    # ---- plumbing -------------------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 - keep test output clean
        pass

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        with self.state.lock:
            self.state.requests.append((self.command, self.path, status))

    def _json(self, status: int, payload, headers: dict | None = None, head: bool = False):
        self._send(status, json.dumps(payload).encode(), headers, head)

    def _authorized(self) -> bool:
        if self.state.token is None:
            return True
        return self.headers.get("Authorization", "") == f"Bearer {self.state.token}"

    def _dispatch(self):
        body = self._body() if self.command in ("POST", "PUT") else b""
        try:
            self._route(body)
        except HubError as err:
            headers = {"X-Error-Code": err.code} if err.code else {}
            headers["X-Error-Message"] = err.message
            self._json(err.status, {"error": err.message, **err.extra}, headers, head=self.command == "HEAD")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _dispatch

    # ---- routing --------------------------------------------------------------------------

    def _route(self, body: bytes):
        url = urlsplit(self.path)
        raw = [s for s in url.path.split("/") if s]
        query = parse_qs(url.query)
        method = self.command
        if raw[:2] == ["api", "whoami-v2"]:
            return self._whoami()
        if raw[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._json(200, {"errors": [], "warnings": []})
        if raw[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body or b"{}"))
        if raw[:3] == ["api", "repos", "delete"] and method == "DELETE":
            return self._delete_repo(json.loads(body or b"{}"))
        if raw and raw[0] == "lfs-upload" and method == "PUT":
            return self._lfs_put(unquote(raw[1]), body)
        if raw and raw[0] == "lfs-verify" and method == "POST":
            return self._lfs_verify(json.loads(body))
        if raw and raw[0] == "api" and len(raw) >= 4 and raw[1] in REPO_TYPES:
            repo_type, repo_id = REPO_TYPES[raw[1]], f"{unquote(raw[2])}/{unquote(raw[3])}"
            return self._api(method, repo_type, repo_id, [unquote(s) for s in raw[4:]], query, body)
        # git / file routes: [datasets/|spaces/]ns/name(.git)/...
        repo_type = "model"
        if raw and raw[0] in ("datasets", "spaces"):
            repo_type, raw = REPO_TYPES[raw[0]], raw[1:]
        if len(raw) == 6 and raw[1].endswith(".git") and raw[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{raw[0]}/{raw[1][:-4]}", json.loads(body))
        if len(raw) >= 5 and raw[2] == "resolve":
            repo_id = f"{unquote(raw[0])}/{unquote(raw[1])}"
            return self._resolve(repo_type, repo_id, unquote(raw[3]), unquote("/".join(raw[4:])), method == "HEAD")
        raise HubError(404, f"no route for {method} {url.path}")

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        with self.state.lock:
            repo = self.state.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorized()):
            raise HubError(404, f"Repository Not Found for url: {self.base_url}{self.path}.", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _require_write(self):
        if not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header", "Unauthorized")

    # ---- API ------------------------------------------------------------------------------

    def _whoami(self):
        if not self._authorized() or "Authorization" not in self.headers:
            raise HubError(401, "Invalid user token.")
        self._json(200, {"type": "user", "name": self.state.user, "fullname": "Test User", "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.base_url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    def _create_repo(self, payload: dict):
        self._require_write()
        repo_type = payload.get("type") or "model"
        name, org = payload["name"], payload.get("organization") or self.state.user
        repo_id = f"{org}/{name}"
        with self.state.lock:
            existing = self.state.repos.get((repo_type, repo_id))
            if existing is not None:
                return self._json(409, {"error": "You already created this repo", "url": self._repo_url(existing)},
                                  {"X-Error-Message": "You already created this repo"})
            # huggingface_hub 1.x+ sends "visibility"; older clients sent "private"
            private = bool(payload.get("private")) or payload.get("visibility") in ("private", "protected")
            repo = Repo(repo_type, repo_id, private)
            repo.commit("main", {".gitattributes": Blob(GITATTRIBUTES, lfs=False)}, "initial commit")
            self.state.repos[(repo_type, repo_id)] = repo
        self._json(200, {"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self, payload: dict):
        self._require_write()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.state.user}/{payload['name']}"
        self._repo(repo_type, repo_id)
        with self.state.lock:
            del self.state.repos[(repo_type, repo_id)]
        self._json(200, {})

    def _api(self, method: str, repo_type: str, repo_id: str, rest: list[str], query: dict, body: bytes):
        repo = self._repo(repo_type, repo_id)
        action = rest[0] if rest else None
        if method in ("GET", "HEAD") and action in (None, "revision"):
            revision = "/".join(rest[1:]) if action == "revision" else "main"
            return self._repo_info(repo, revision, query, head=method == "HEAD")
        if method == "POST" and action == "preupload":
            self._require_write()
            return self._preupload(repo, "/".join(rest[1:]), json.loads(body))
        if method == "POST" and action == "commit":
            self._require_write()
            return self._commit(repo, "/".join(rest[1:]), body)
        if method == "GET" and action == "tree":
            return self._tree(repo, rest[1], "/".join(rest[2:]), query)
        if method == "POST" and action == "paths-info":
            return self._paths_info(repo, rest[1], body)
        if method == "GET" and action == "refs":
            return self._json(200, {"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                                                 for b, s in repo.branches.items()], "converts": [], "tags": []})
        raise HubError(404, f"no API route for {method} {self.path}")

    def _repo_info(self, repo: Repo, revision: str, query: dict, head: bool):
        commit = self._commit_at(repo, revision)
        with_meta = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, blob in sorted(commit.tree.items()):
            entry: dict = {"rfilename": path}
            if with_meta:
                entry.update(size=len(blob.data), blobId=blob.git_oid)
                if blob.lfs:
                    entry["lfs"] = {"sha256": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
            siblings.append(entry)
        date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date))
        info = {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0], "sha": commit.sha, "lastModified": date, "createdAt": date,
                "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0,
                "tags": [], "siblings": siblings}
        self._json(200, info, head=head)

    def _preupload(self, repo: Repo, revision: str, payload: dict):
        commit = self._commit_at(repo, revision)
        files = []
        for item in payload.get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            # The Hub decides by content: binary samples (Parquet) go to LFS, text to git.
            lfs = b"\0" in sample or item["path"].endswith((".parquet", ".arrow"))
            existing = commit.tree.get(item["path"])
            oid = None
            if existing is not None:
                oid = existing.sha256 if existing.lfs else existing.git_oid
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": oid})
        self._json(200, {"files": files, "commitOid": commit.sha})

    def _commit(self, repo: Repo, revision: str, body: bytes):
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        with self.state.lock:
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound")
            head = repo.resolve(revision)
            assert head is not None
            parent = header.get("parentCommit")
            if parent and parent != head.sha:
                raise HubError(412, f"A commit has happened since {parent}. Please refresh and try again.")
            tree = dict(head.tree)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value.get("path", "")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                    tree[path] = Blob(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    data = self.state.lfs_objects.get(value["oid"])
                    if data is None:
                        raise HubError(422, f"LFS object {value['oid']} for {path} was never uploaded")
                    tree[path] = Blob(data, lfs=True)
                elif key == "deletedFile":
                    if path not in tree:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del tree[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    doomed = [p for p in tree if p.startswith(prefix)]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del tree[p]
                else:
                    raise HubError(400, f"unsupported commit operation {key!r}")
            commit = repo.commit(revision, tree, header.get("summary", ""))
        self._json(200, {"success": True, "commitOid": commit.sha, "pullRequestUrl": None, "hookOutput": "",
                         "commitUrl": f"{self._repo_url(repo)}/commit/{commit.sha}"})

    @staticmethod
    def _file_entry(path: str, blob: Blob) -> dict:
        entry = {"type": "file", "oid": blob.git_oid, "size": len(blob.data), "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
        return entry

    @staticmethod
    def _dir_entry(path: str) -> dict:
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}

    def _tree(self, repo: Repo, revision: str, path: str, query: dict):
        commit = self._commit_at(repo, revision)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries, dirs = [], set()
        for file_path, blob in sorted(commit.tree.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix):]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                directory = prefix + "/".join(parts[:depth])
                if (recursive or depth == 1) and directory not in dirs:
                    dirs.add(directory)
                    entries.append(self._dir_entry(directory))
            if recursive or len(parts) == 1:
                entries.append(self._file_entry(file_path, blob))
        if prefix and not entries:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        self._json(200, entries)

    def _paths_info(self, repo: Repo, revision: str, body: bytes):
        commit = self._commit_at(repo, revision)
        form = parse_qs(body.decode())
        entries = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.tree:
                entries.append(self._file_entry(path, commit.tree[path]))
            elif any(p.startswith(path + "/") for p in commit.tree):
                entries.append(self._dir_entry(path))
        self._json(200, entries)

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str, head: bool):
        repo = self._repo(repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        blob = commit.tree.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"commit": commit.sha})
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "ETag": f'"{blob.etag}"',
                   "X-Repo-Commit": commit.sha, "Last-Modified": formatdate(commit.date, usegmt=True)}
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.etag}"', "X-Linked-Size": str(len(blob.data))})
        data, status = blob.data, 200
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            start_text, _, end_text = range_header[6:].partition("-")
            if start_text == "":  # suffix range: the last N bytes
                start, end = max(0, len(data) - int(end_text)), len(data) - 1
            else:
                start, end = int(start_text), min(int(end_text) if end_text else len(data) - 1, len(data) - 1)
            if start >= len(data) and len(data) > 0:
                raise HubError(416, f"range {range_header} outside a file of {len(data)} bytes")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        self._send(status, data, headers, head=head)

    # ---- LFS ------------------------------------------------------------------------------

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict):
        self._require_write()
        self._repo(repo_type, repo_id)
        if payload.get("operation") != "upload":
            raise HubError(400, "only the upload operation is supported")
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            with self.state.lock:
                known = obj["oid"] in self.state.lfs_objects
            if not known:  # no "actions" means "already uploaded": the client skips it
                entry["actions"] = {
                    "upload": {"href": f"{self.base_url}/lfs-upload/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.base_url}/lfs-verify", "header": {}},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_put(self, oid: str, body: bytes):
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"uploaded bytes do not hash to {oid}")
        with self.state.lock:
            self.state.lfs_objects[oid] = body
        self._send(200, b"", {"Content-Type": "text/plain"})

    def _lfs_verify(self, payload: dict):
        with self.state.lock:
            data = self.state.lfs_objects.get(payload.get("oid", ""))
        if data is None or len(data) != payload.get("size"):
            raise HubError(404, f"LFS object {payload.get('oid')} is missing or has the wrong size")
        self._json(200, {"success": True})


class LoopbackHub:
    """Run the loopback Hub on ``127.0.0.1`` in a daemon thread (use as a context manager).

    Args:
        token: the only accepted ``Authorization: Bearer`` token for writes and private reads
            (``None`` accepts anything).
    """

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        state: HubState

    def __init__(self, token: str | None = "hf_loopback_test_token", port: int = 0):
        self.state = HubState(token)
        self._server = self._Server(("127.0.0.1", port), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def client_env(self, **extra: str) -> dict[str, str]:
        """Environment variables that point a ``huggingface_hub`` / ``datasets`` client at this server."""
        env = {"HF_ENDPOINT": self.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        if self.state.token:
            env["HF_TOKEN"] = self.state.token
        env.update(extra)
        return env

    def start(self) -> LoopbackHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> dict[str, bytes]:
        """The files of a repository at ``revision`` (server side, for assertions)."""
        with self.state.lock:
            commit = self.state.repos[(repo_type, repo_id)].resolve(revision)
            assert commit is not None
            return {path: blob.data for path, blob in commit.tree.items()}

    def history(self, repo_id: str, repo_type: str = "dataset") -> list[str]:
        """Commit titles of ``main``, oldest first."""
        with self.state.lock:
            repo = self.state.repos[(repo_type, repo_id)]
            titles, sha = [], repo.branches.get("main")
            while sha:
                titles.append(repo.commits[sha].title)
                sha = repo.commits[sha].parent
            return titles[::-1]


if __name__ == "__main__":  # a manual server: `python tests/hub_server.py` then HF_ENDPOINT=<url> in a client
    with LoopbackHub(token=None) as hub:
        print(f"loopback Hub on {hub.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
