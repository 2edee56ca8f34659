"""The `triton-qa` command line: build, serve and bench."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import tempfile
from pathlib import Path

from triton_qa.repository import RUNTIMES, RepositoryOptions
from triton_qa.tritonserver import TritonPorts

logger = logging.getLogger("triton_qa")


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["bench"]:
        # The benchmark parses its own options; argparse's REMAINDER would
        # reject one that comes first.
        return run_bench_arguments(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=os.environ.get("TRITON_QA_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triton-qa",
        description="Extractive question answering on NVIDIA Triton Inference Server.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="export QA checkpoints to ONNX and write a Triton model repository",
    )
    build.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="Hugging Face Hub id (e.g. deepset/roberta-base-squad2) or local "
        "checkpoint folder; several models share one repository",
    )
    build.add_argument("--output", type=Path, required=True, help="repository folder")
    build.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="python",
        help="model step: 'python' runs ONNX Runtime in a Python-backend model (the "
        "local tritonserver); 'onnxruntime' uses the native backend of the NVIDIA "
        "tritonserver image (default: python)",
    )
    build.add_argument(
        "--tensorrt",
        action="store_true",
        help="with --runtime onnxruntime: add the TensorRT accelerator in FP16 on GPUs",
    )
    build.add_argument(
        "--quantize",
        choices=["int8"],
        help="int8: ONNX Runtime dynamic quantization, for CPU deployments",
    )
    build.add_argument(
        "--window-batch-size",
        type=int,
        default=RepositoryOptions.window_batch_size,
        help="max windows per model call (the model step's max_batch_size)",
    )
    build.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=RepositoryOptions.max_queue_delay_us,
        help="dynamic batcher delay in microseconds",
    )
    build.add_argument(
        "--model-instances",
        type=int,
        default=RepositoryOptions.model_instances,
        help="model step instances",
    )
    build.add_argument(
        "--intra-op-threads",
        type=int,
        default=RepositoryOptions.intra_op_threads,
        help="ONNX Runtime intra-op threads per instance (python runtime)",
    )
    build.add_argument(
        "--rows-per-run",
        type=int,
        default=RepositoryOptions.rows_per_run,
        help="windows per ONNX Runtime call in the python runtime's model step; "
        "0 runs each dynamic batch in one call (default: 1, fastest on CPUs)",
    )
    build.add_argument(
        "--pad-to-multiple-of",
        type=int,
        default=None,
        help="pad windows to a multiple of this many tokens (default 1 for the "
        "python runtime, 32 for onnxruntime, whose batcher only merges equal shapes)",
    )
    build.add_argument(
        "--model-id",
        action="append",
        help="served model id for each MODEL, in order (default: the Hub id, or the "
        "folder name)",
    )
    build.set_defaults(handler=run_build)

    serve = commands.add_parser("serve", help="start tritonserver and the gateway")
    source = serve.add_mutually_exclusive_group()
    source.add_argument(
        "--model-repository",
        type=Path,
        help="a repository written by `triton-qa build`",
    )
    source.add_argument(
        "--model",
        help="a Hub id or checkpoint folder to build into a temporary repository first",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="gateway bind address (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, default=8080, help="gateway port (default: 8080)"
    )
    serve.add_argument(
        "--triton-http-port",
        type=int,
        default=8000,
        help="tritonserver HTTP port, on 127.0.0.1 (default: 8000)",
    )
    serve.add_argument(
        "--triton-grpc-port",
        type=int,
        default=8001,
        help="tritonserver gRPC port, on 127.0.0.1 (default: 8001)",
    )
    serve.add_argument(
        "--triton-metrics-port",
        type=int,
        default=8002,
        help="tritonserver metrics port, on 127.0.0.1 (default: 8002)",
    )
    serve.add_argument(
        "--triton-log", type=Path, help="append tritonserver's output to this file"
    )
    serve.set_defaults(handler=run_serve)

    bench = commands.add_parser("bench", help="measure the stack against baselines")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(handler=run_bench)
    return parser


def run_build(args: argparse.Namespace) -> int:
    from triton_qa.build import build_model
    from triton_qa.export import ExportError
    from triton_qa.hub import CheckpointError

    model_ids = args.model_id or []
    if model_ids and len(model_ids) != len(args.models):
        print(
            "triton-qa build: give --model-id once per MODEL or not at all",
            file=sys.stderr,
        )
        return 2
    pad = args.pad_to_multiple_of or (1 if args.runtime == "python" else 32)
    options = RepositoryOptions(
        runtime=args.runtime,
        tensorrt=args.tensorrt,
        window_batch_size=args.window_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        model_instances=args.model_instances,
        intra_op_threads=args.intra_op_threads,
        rows_per_run=args.rows_per_run,
        pad_to_multiple_of=pad,
    )
    if args.tensorrt and args.runtime != "onnxruntime":
        print(
            "triton-qa build: --tensorrt needs --runtime onnxruntime (the native "
            "backend of the NVIDIA tritonserver image)",
            file=sys.stderr,
        )
        return 2
    for index, model in enumerate(args.models):
        model_id = model_ids[index] if model_ids else None
        try:
            build_model(
                model, args.output, options, model_id=model_id, quantize=args.quantize
            )
        except (CheckpointError, ExportError) as error:
            print(f"triton-qa build: {model}: {error}", file=sys.stderr)
            return 1
    print(f"model repository written to {args.output}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from triton_qa.build import BUNDLED_REPOSITORY, build_model
    from triton_qa.export import ExportError
    from triton_qa.hub import CheckpointError
    from triton_qa.serve import ServeOptions, serve

    ports = TritonPorts(
        args.triton_http_port, args.triton_grpc_port, args.triton_metrics_port
    )
    busy = busy_ports(
        [(args.host, args.port, "--port")]
        + [
            ("127.0.0.1", port, flag)
            for port, flag in (
                (ports.http, "--triton-http-port"),
                (ports.grpc, "--triton-grpc-port"),
                (ports.metrics, "--triton-metrics-port"),
            )
        ]
    )
    if busy:
        print(f"triton-qa serve: {busy}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="triton-qa-serve-") as work_dir:
        repository = args.model_repository or BUNDLED_REPOSITORY
        if args.model:
            repository = Path(work_dir) / "model_repository"
            try:
                build_model(args.model, repository, RepositoryOptions())
            except (CheckpointError, ExportError) as error:
                print(f"triton-qa serve: {args.model}: {error}", file=sys.stderr)
                return 1
        if not repository.is_dir():
            print(
                f"triton-qa serve: model repository {repository} not found; build one "
                "with `triton-qa build` or run `make model_repository`",
                file=sys.stderr,
            )
            return 2
        options = ServeOptions(
            model_repository=repository.resolve(),
            host=args.host,
            port=args.port,
            triton_ports=ports,
            triton_log=args.triton_log,
        )
        try:
            return serve(options)
        except (RuntimeError, TimeoutError) as error:
            print(
                f"triton-qa serve: failed to start: {error}; see the log above",
                file=sys.stderr,
            )
            return 1


def busy_ports(endpoints: list[tuple[str, int, str]]) -> str:
    """Return a message naming the first port already in use, or an empty string."""
    for host, port, flag in endpoints:
        with socket.socket() as sock:
            # Like the servers, ignore connections still in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return f"port {port} is already in use; pick another with {flag}"
    return ""


def run_bench(args: argparse.Namespace) -> int:
    return run_bench_arguments(args.bench_args)


def run_bench_arguments(arguments: list[str]) -> int:
    from triton_qa.bench import main as bench_main

    return bench_main(arguments)


if __name__ == "__main__":
    sys.exit(main())
