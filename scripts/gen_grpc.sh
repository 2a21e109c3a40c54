#!/bin/sh
# Regenerate the Python modules of loopstack's Open Inference Protocol v2 gRPC service
# from src/loopstack/server/_proto/grpc_predict_v2.proto (run from anywhere):
#
#   pip install 'grpcio-tools==1.66.2'      # a dev tool, never a dependency
#   scripts/gen_grpc.sh                     # PYTHON=/path/to/python to choose one
#
# That grpcio-tools writes protobuf 5.27 gencode (which every protobuf >= 5.27 runs) and a
# _pb2_grpc module that needs grpcio >= 1.66.2: the floors of the `grpc` extra in
# pyproject.toml. A newer grpcio-tools raises those floors; change both together.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
PROTO=src/loopstack/server/_proto/grpc_predict_v2.proto
"$PYTHON" -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src "$PROTO"
# The messages go in a descriptor pool of their own: tritonclient.grpc registers the same
# `inference.*` names (from Triton's proto) in protobuf's default pool, and one process
# (a test, an app that is both client and server) may import both.
"$PYTHON" - <<'PY'
from pathlib import Path

path = Path("src/loopstack/server/_proto/grpc_predict_v2_pb2.py")
text = path.read_text()
default = "_descriptor_pool.Default().AddSerializedFile("
if text.count(default) != 1:
    raise SystemExit(f"{path}: expected one {default!r}; the generator changed, look again")
path.write_text(text.replace(default, "_descriptor_pool.DescriptorPool().AddSerializedFile("))
PY
echo "regenerated ${PROTO%.proto}_pb2.py, _pb2.pyi and _pb2_grpc.py"
