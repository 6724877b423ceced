"""Each rule's conda env lists every third-party module its script imports, and nothing else.

Conda channels are not reachable here, so this is checked statically: the rules are parsed for
their `conda:` and `script:` files, the scripts' imports are followed through the marsseg package,
and the modules found are compared with the env file's packages.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "workflow" / "rules"
PACKAGE = REPO / "src"
# import name -> package name, where they differ
PACKAGE_NAMES = {"sklearn": "scikit-learn", "yaml": "pyyaml"}
# The interpreter, and pip for the envs' `pip:` sections
NOT_PACKAGES = {"python", "pip"}


def rules_with_envs() -> dict[str, tuple[Path, Path]]:
    """rule name -> (env file, script file), from every .smk file."""
    found = {}
    for smk in RULES.glob("*.smk"):
        for block in re.split(r"^(?=rule |checkpoint )", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"(?:rule|checkpoint) (\w+):", block).group(1)
            conda = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", block)
            script = re.search(r"script:\s*\n\s*\"([^\"]+)\"", block)
            if script:
                assert conda, f"rule {name} runs a script but has no conda: env"
                found[name] = (
                    (RULES / conda.group(1)).resolve(),
                    (RULES / script.group(1)).resolve(),
                )
    return found


def imported_modules(path: Path) -> set[str]:
    """Names of every import in a file, function-level imports included; `from a import b`
    gives a and a.b (b may be a submodule: `from marsseg.models import architectures`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def third_party_imports(script: Path) -> set[str]:
    """Third-party top-level modules a script needs, following marsseg's own modules."""
    seen, todo, third_party = set(), [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top == "marsseg":
                base = PACKAGE.joinpath(*module.split("."))
                candidates = [base.with_suffix(".py"), base / "__init__.py"]
                todo += [c for c in candidates if c.exists()]
            elif top not in sys.stdlib_module_names and top != "snakemake":
                third_party.add(PACKAGE_NAMES.get(top, top))
    return third_party


def env_packages(env_file: Path) -> set[str]:
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"], env_file
    packages = set()
    for dependency in env["dependencies"]:
        specs = dependency["pip"] if isinstance(dependency, dict) else [dependency]
        for spec in specs:
            name, _, version = (
                re.split(r"(==|=)", spec, maxsplit=1) if "=" in spec else (spec, 0, "")
            )
            assert version, f"{env_file.name}: {spec} is not pinned"
            packages.add(name.split("[")[0])
    return packages - NOT_PACKAGES


def test_every_rule_script_has_a_pinned_env_listing_its_imports():
    rules = rules_with_envs()
    assert {"synthesize", "load_raw", "train", "predict", "comparison_table"} <= set(rules)
    needed_by_env: dict[Path, set[str]] = {}
    for name, (env_file, script) in rules.items():
        assert env_file.exists(), f"rule {name}: {env_file} is missing"
        needed = third_party_imports(script)
        missing = needed - env_packages(env_file)
        assert not missing, f"rule {name}: {env_file.name} lacks {sorted(missing)}"
        needed_by_env.setdefault(env_file, set()).update(needed)
    for env_file, needed in needed_by_env.items():
        unused = env_packages(env_file) - needed
        assert not unused, f"{env_file.name} lists {sorted(unused)}, which no rule using it imports"


@pytest.mark.parametrize("module", ["numpy", "keras"])
def test_the_import_scan_finds_real_imports(module):
    scripts = {script.name: script for _, script in rules_with_envs().values()}
    assert module in third_party_imports(scripts["train.py"])
    assert "keras" not in third_party_imports(scripts["split.py"])


def test_the_import_scan_follows_a_submodule_imported_by_name(tmp_path):
    """`from marsseg.models import architectures` (in build_model) is the only way to the
    architectures and their blocks: a package they alone import must be found too."""
    script = tmp_path / "script.py"
    script.write_text("from marsseg.models import architectures\n")
    assert third_party_imports(script) == {"keras", "numpy"}  # keras: architectures, blocks


def test_rule_scripts_find_this_package_where_it_is_not_installed(tmp_path):
    """In a conda env (--sdm conda) this package is not installed. Snakemake's preamble appends
    the script's folder to sys.path, and workflow/scripts/marsseg links to src/marsseg: a Python
    that sees no site-packages (-S) imports the package from src/ that way."""
    folders = {script.parent for _, script in rules_with_envs().values()}
    assert folders == {REPO / "workflow" / "scripts"}
    code = "import sys; sys.path.append(sys.argv[1]); import marsseg; print(marsseg.__file__)"
    found = subprocess.run(
        [sys.executable, "-S", "-c", code, str(REPO / "workflow" / "scripts")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found).resolve() == REPO / "src" / "marsseg" / "__init__.py"
