"""The owner's docs agree with the code: docs/config.md is what the schema gives, every config key
is documented, the uninstall table matches what install.sh leaves, and links resolve."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from phaeton.config_schema import CONFIG_SCHEMA

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
OWNER_DOCS = ["install.md", "alfen.md", "ocpp.md", "control.md", "config.md",
              "troubleshooting.md"]


def _config_docs():
    spec = importlib.util.spec_from_file_location("config_docs", REPO / "scripts/config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaf_keys(properties: dict, prefix: str = ""):
    for name, schema in properties.items():
        if schema.get("type") == "object" and "properties" in schema:
            yield from _leaf_keys(schema["properties"], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_committed_config_doc_is_what_the_schema_gives():
    result = subprocess.run([sys.executable, str(REPO / "scripts/config_docs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (DOCS / "config.md").read_text() == _config_docs().render()


def test_every_config_key_is_documented_with_its_default():
    doc = (DOCS / "config.md").read_text()
    keys = list(_leaf_keys(CONFIG_SCHEMA["properties"]))
    assert len(keys) > 100
    for key in keys:
        assert f"| `{key}` |" in doc, key
    fuse_row = next(line for line in doc.splitlines() if line.startswith("| `site.fuse_a` |"))
    assert "`25`" in fuse_row and "| A |" in fuse_row and ">= 6 and <= 630" in fuse_row
    host_row = next(line for line in doc.splitlines()
                    if line.startswith("| `charger.alfen.host` |"))
    assert "required when charger.protocol is 'alfen'" in host_row


def test_check_mode_reports_a_stale_doc(tmp_path, monkeypatch, capsys):
    config_docs = _config_docs()
    stale = tmp_path / "config.md"
    stale.write_text(config_docs.render().replace("site.fuse_a", "site.fuse"))
    monkeypatch.setattr(config_docs, "DOC_PATH", stale)
    assert config_docs.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert config_docs.main([]) == 0
    assert config_docs.main(["--check"]) == 0


def test_uninstall_table_matches_what_the_installer_keeps():
    from tests.test_install import KEPT_AFTER_UNINSTALL

    kept = set()
    for line in (DOCS / "install.md").read_text().splitlines():
        if line.startswith("| `/data/phaeton/") and line.rstrip().endswith("| **kept** |"):
            first_cell = line.split("|")[1]
            tokens = re.findall(r"`([^`]+)`", first_cell)
            base = tokens[0].rsplit("/", 1)[1]
            kept.add(base)
            kept.update(base + suffix for suffix in tokens[1:])
    assert kept == KEPT_AFTER_UNINSTALL


def test_links_between_the_docs_resolve():
    for name in OWNER_DOCS:
        text = (DOCS / name).read_text()
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if target.startswith("http"):
                continue
            assert (DOCS / target).exists(), f"{name} links to missing {target}"


def test_every_yaml_example_in_the_docs_passes_check_config(tmp_path):
    """An owner copies these into config.yaml: each must be valid as it stands (a charger host
    is added where the example is not about the charger)."""
    import yaml

    examples = 0
    for doc in sorted(DOCS.glob("*.md")):
        if doc.name == "config.md":
            continue
        for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)):
            config = yaml.safe_load(block)
            config.setdefault("charger", {"alfen": {"host": "192.168.1.50"}})
            path = tmp_path / f"{doc.stem}-{index}.yaml"
            path.write_text(yaml.safe_dump(config))
            result = subprocess.run([sys.executable, "-m", "phaeton", "check-config", str(path)],
                                    capture_output=True, text=True, cwd=REPO)
            assert result.returncode == 0, f"{doc.name} example {index + 1}: {result.stdout}"
            examples += 1
    assert examples >= 4
