#!/usr/bin/python3
"""A minimal CRI client for the systemd lane (systemd-engines.sh), since Debian packages no
crictl: containerd's CRI plugin over gRPC (python3-grpcio), k8s.io/cri-api runtime.v1, with
the few messages the lane sends encoded by hand (field numbers from cri-api's api.proto).

    cri.py runp NAME UID PARENT HANDLER                  prints the pod sandbox's id
    cri.py create POD PODNAME UID PARENT NAME MEMORY IMAGE CMD...   prints the container's id
    cri.py start|stop|rm ID       cri.py stopp|rmp POD
    cri.py status ID              prints "STATE EXIT_CODE" (0 created, 1 running, 2 exited)
    cri.py exec ID CMD...         prints the command's stdout, exits with its exit code

PARENT is the pod's cgroup parent (a slice, as the kubelet passes it with cgroupDriver:
systemd), HANDLER the runtime handler (a `[...containerd.runtimes.NAME]` table); `create`
repeats the pod's PODNAME, UID and PARENT, as the kubelet sends the pod's config again.
"""
import sys

import grpc

SOCKET = "unix:///run/containerd/containerd.sock"
TIMEOUT = 120


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def num(field, n):
    """A varint field (proto3: zero is not sent)."""
    return varint(field << 3) + varint(n) if n else b""


def raw(field, data):
    """A length-delimited field: bytes, a string or a nested message."""
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def msg(field, *parts):
    return raw(field, b"".join(parts))


def parse(buf):
    """A message's fields: number -> list of ints (varints) or bytes (length-delimited)."""
    out, i = {}, 0

    def read_varint():
        nonlocal i
        n, shift = 0, 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(buf):
        key = read_varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            value = read_varint()
        elif wire == 2:
            size = read_varint()
            value, i = buf[i : i + size], i + size
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(field, []).append(value)
    return out


def call(method, request):
    channel = grpc.insecure_channel(SOCKET)
    rpc = channel.unary_unary(f"/runtime.v1.RuntimeService/{method}")
    return parse(rpc(request, timeout=TIMEOUT))


def pod_config(name, uid, parent):
    # PodSandboxConfig: metadata (name 1, uid 2, namespace 3) = 1, log_directory = 3,
    # linux = 8 (LinuxPodSandboxConfig: cgroup_parent = 1, security_context = 2 with
    # namespace_options = 1, whose network = 1 is NODE (2): the host's network, no CNI).
    return b"".join(
        [
            msg(1, raw(1, name), raw(2, uid), raw(3, "lane")),
            raw(3, f"/var/log/pods/lane_{name}_{uid}"),
            msg(8, raw(1, parent), msg(2, msg(1, num(1, 2)))),
        ]
    )


def main(argv):
    verb, args = argv[1], argv[2:]
    if verb == "runp":
        name, uid, parent, handler = args
        # RunPodSandboxRequest: config = 1, runtime_handler = 2 -> pod_sandbox_id = 1.
        reply = call("RunPodSandbox", msg(1, pod_config(name, uid, parent)) + raw(2, handler))
        print(reply[1][0].decode())
    elif verb == "create":
        pod, pod_name, uid, parent, name, memory, image, *cmd = args
        # ContainerConfig: metadata (name 1) = 1, image (image 1) = 2, command = 3,
        # log_path = 11, linux = 15 (resources = 1: memory_limit_in_bytes = 4).
        config = b"".join(
            [msg(1, raw(1, name)), msg(2, raw(1, image))]
            + [raw(3, c) for c in cmd]
            + [raw(11, f"{name}.log"), msg(15, msg(1, num(4, int(memory))))]
        )
        # CreateContainerRequest: pod_sandbox_id = 1, config = 2, sandbox_config = 3.
        request = raw(1, pod) + raw(2, config) + msg(3, pod_config(pod_name, uid, parent))
        print(call("CreateContainer", request)[1][0].decode())
    elif verb in ("start", "rm"):
        method = {"start": "StartContainer", "rm": "RemoveContainer"}[verb]
        call(method, raw(1, args[0]))
    elif verb == "stop":
        # StopContainerRequest: container_id = 1, timeout = 2 (seconds before SIGKILL).
        call("StopContainer", raw(1, args[0]) + num(2, 2))
    elif verb in ("stopp", "rmp"):
        method = {"stopp": "StopPodSandbox", "rmp": "RemovePodSandbox"}[verb]
        call(method, raw(1, args[0]))
    elif verb == "status":
        # ContainerStatusResponse: status = 1 (ContainerStatus: state = 3, exit_code = 7).
        status = parse(call("ContainerStatus", raw(1, args[0]))[1][0])
        print(status.get(3, [0])[0], status.get(7, [0])[0])
    elif verb == "exec":
        # ExecSyncRequest: container_id = 1, cmd = 2, timeout = 3 -> stdout = 1, exit_code = 3.
        request = raw(1, args[0]) + b"".join(raw(2, c) for c in args[1:]) + num(3, 30)
        reply = call("ExecSync", request)
        sys.stdout.write(reply.get(1, [b""])[0].decode())
        return reply.get(3, [0])[0]
    else:
        raise SystemExit(f"cri.py: unknown verb {verb}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except grpc.RpcError as e:
        sys.exit(f"cri.py {sys.argv[1]}: {e.code()}: {e.details()}")
