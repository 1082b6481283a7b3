"""The Python/boto3 baseline for `make bench`: the same empty handler as
examples/empty_handler.rs (three boto3 clients built at init), with a minimal
Lambda Runtime API loop, as a custom runtime would run it."""
import json
import os
import urllib.request

import boto3

ssm = boto3.client("ssm")
ecs = boto3.client("ecs")
codepipeline = boto3.client("codepipeline")

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
while True:
    with urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
    urllib.request.urlopen(
        urllib.request.Request(
            f"http://{api}/2018-06-01/runtime/invocation/{request_id}/response",
            data=json.dumps(None).encode(),
            method="POST",
        )
    )
