#!/usr/bin/python3
"""One CRI call, the way the kubelet makes it: gRPC over containerd's unix socket.

Usage: cri_client.py SOCKET SERVICE/METHOD TIMEOUT_SECONDS REQUEST_JSON > response.json

SERVICE is RuntimeService or ImageService (package runtime.v1). The request is the method's
input message as JSON (proto field names); the response is printed as JSON with proto field
names and default values included (so an exit code of 0 is there). The message classes come
from cri.proto, compiled by the test with `protoc --python_out` into a directory on
PYTHONPATH (module cri_pb2).

Exit status: 0 on success; 2 when the call fails, with the gRPC status code and details on
stderr (the daemon's error text, which the test shows); 64 on bad usage.
"""

import json
import sys

import grpc
from google.protobuf import json_format

import cri_pb2


def main(argv):
    if len(argv) != 5 or "/" not in argv[2]:
        print(__doc__, file=sys.stderr)
        return 64
    socket, path, timeout = argv[1], argv[2], float(argv[3])
    service_name, method_name = path.split("/", 1)
    service = cri_pb2.DESCRIPTOR.services_by_name.get(service_name)
    method = service and service.methods_by_name.get(method_name)
    if method is None:
        print(f"no method {path} in cri.proto", file=sys.stderr)
        return 64
    request_class = getattr(cri_pb2, method.input_type.name)
    response_class = getattr(cri_pb2, method.output_type.name)
    request = json_format.ParseDict(json.loads(argv[4]), request_class())
    with grpc.insecure_channel("unix:" + socket) as channel:
        call = channel.unary_unary(
            f"/{service.full_name}/{method_name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        try:
            response = call(request, timeout=timeout)
        except grpc.RpcError as e:
            print(f"{path}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 2
    out = json_format.MessageToDict(
        response,
        preserving_proto_field_name=True,
        including_default_value_fields=True,
    )
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
