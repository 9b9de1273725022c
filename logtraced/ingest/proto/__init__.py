"""Protobuf schemas other projects own, vendored with their licences, and the Python protoc made of them.

`push.proto` is Loki's push request (Apache-2.0, see LICENSE here).  The runtime needs only
`protobuf`; the generated `push_pb2.py` and `push_pb2.pyi` are committed.  After changing the
schema, regenerate them from the repository root with grpcio-tools (a development tool, not
a dependency):

    python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. logtraced/ingest/proto/push.proto

Running protoc from the root registers the file as `logtraced/ingest/proto/push.proto` in
protobuf's global descriptor pool, a name no other package can collide with.
"""
