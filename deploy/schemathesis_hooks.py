"""Schemathesis hooks for deploy/api-checks.sh: a request that is valid by the document is sent
the way a real client sends it.

- A fresh Idempotency-Key per request. Schemathesis draws header values from a small pool, so
  one key would come back with another body (a 422 by design: "the same key with another
  body") or replay an answer whose record a later DELETE removed.
- A PATCH guarded by If-Match gets the ETag of a GET of the same record, read just before;
  any other tag would be stale, and 412 is the right answer to that (the Rust tests check it).

Negative cases (values the document calls invalid) are left as generated: those must still be
refused.
Needs PATINA_CHECKS_URL and PATINA_CHECKS_TOKEN (the gateway's base URL and a bearer token).
"""

import os
import re
import urllib.error
import urllib.request
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-~]{1,255}")

# A write guarded by If-Match -> the path of the read whose ETag it checks.
ETAG_FROM = {"PATCH /v1/jobs/{job_number}": "/v1/jobs/{job_number}"}


def _header(headers, name):
    for k in headers:
        if k.lower() == name.lower():
            return k
    return None


def _etag(path):
    req = urllib.request.Request(
        os.environ["PATINA_CHECKS_URL"] + path,
        headers={"Authorization": "Bearer " + os.environ["PATINA_CHECKS_TOKEN"]},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.headers.get("ETag")
    except urllib.error.HTTPError:
        return None


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    # A negative case stays as generated: editing it would make schemathesis take it for a
    # positive one (and, say, send the Authorization header it meant to leave out).
    if not headers or (case.meta is not None and case.meta.generation.mode.is_negative):
        return
    key = _header(headers, "Idempotency-Key")
    if key is not None and isinstance(headers[key], str) and VALID_KEY.fullmatch(headers[key]):
        headers[key] = str(uuid.uuid4())
    read = ETAG_FROM.get(f"{str(case.operation.method).upper()} {case.operation.path}")
    tag = _header(headers, "If-Match")
    if read is None or tag is None:
        return
    sent = headers[tag]
    if not isinstance(sent, str) or not sent.strip(" ,"):
        return
    params = case.path_parameters or {}
    try:
        path = read.format(**params)
    except (KeyError, IndexError):
        return
    if not re.fullmatch(r"[/A-Za-z0-9_-]+", path):
        return
    etag = _etag(path)
    if etag is not None:
        headers[tag] = etag
