# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the capture_manifest module on temporary incident folders."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import capture_manifest


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def incident(tmp_path):
    """Create an incident folder with nested files, a symlink and modes."""
    root = tmp_path / "incident"
    (root / "logs").mkdir(parents=True)
    (root / "redis").mkdir()
    (root / "logs" / "backend.log").write_bytes(b"error: signing key\n")
    (root / "redis" / "dump.rdb").write_bytes(b"REDIS0011")
    (root / "symptoms.md").write_bytes(b"# Symptoms\n")
    os.chmod(root / "redis" / "dump.rdb", 0o600)
    os.chmod(root / "symptoms.md", 0o644)
    os.symlink("redis/dump.rdb", root / "latest.rdb")
    return root


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        capture_manifest.main()
    return json.loads(capsys.readouterr().out)


def capture_manifest_warnings(result):
    """Return the warning texts of a module result (ansible-core 2.19 format)."""
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


def read_manifest(root):
    return json.loads((root / "manifest.json").read_text())


def test_scan_folder_lists_sorted_entries(incident):
    entries, warnings = capture_manifest.scan_folder(str(incident), [])
    assert warnings == []
    assert entries == [
        {"path": "latest.rdb", "type": "symlink", "target": "redis/dump.rdb"},
        {
            "path": "logs/backend.log",
            "type": "file",
            "size": 19,
            "sha256": sha256(b"error: signing key\n"),
            "mode": f"{stat.S_IMODE(os.stat(incident / 'logs' / 'backend.log').st_mode):04o}",
        },
        {
            "path": "redis/dump.rdb",
            "type": "file",
            "size": 9,
            "sha256": sha256(b"REDIS0011"),
            "mode": "0600",
        },
        {
            "path": "symptoms.md",
            "type": "file",
            "size": 11,
            "sha256": sha256(b"# Symptoms\n"),
            "mode": "0644",
        },
    ]


def test_scan_folder_does_not_follow_directory_symlink(incident, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not part of the capture")
    os.symlink(outside, incident / "linked-dir")
    entries, _warnings = capture_manifest.scan_folder(str(incident), [])
    paths = [entry["path"] for entry in entries]
    assert "linked-dir" in paths
    assert "linked-dir/secret.txt" not in paths
    assert entries[paths.index("linked-dir")]["type"] == "symlink"


def test_scan_folder_skips_own_files(incident):
    (incident / "manifest.json").write_text("{}")
    (incident / "SHA256SUMS").write_text("")
    (incident / ".manifest.json.abc123.tmp").write_text("")
    (incident / "logs" / "manifest.json").write_text("nested copies are data")
    entries, _warnings = capture_manifest.scan_folder(str(incident), [])
    paths = [entry["path"] for entry in entries]
    assert "manifest.json" not in paths
    assert "SHA256SUMS" not in paths
    assert ".manifest.json.abc123.tmp" not in paths
    assert "logs/manifest.json" in paths


def test_scan_folder_warns_on_fifo(incident):
    os.mkfifo(incident / "pipe")
    entries, warnings = capture_manifest.scan_folder(str(incident), [])
    assert "pipe" not in [entry["path"] for entry in entries]
    assert warnings == ["skipped 'pipe': not a regular file, directory or symlink"]


def test_present_warns_on_fifo(incident, capsys):
    os.mkfifo(incident / "pipe")
    result = run_main({"path": str(incident)}, capsys)
    assert capture_manifest_warnings(result) == [
        "skipped 'pipe': not a regular file, directory or symlink"
    ]


@pytest.mark.parametrize(
    "exclude, expected_paths",
    [
        pytest.param(
            ["logs"], ["latest.rdb", "redis/dump.rdb", "symptoms.md"], id="directory"
        ),
        pytest.param(
            ["./logs/"],
            ["latest.rdb", "redis/dump.rdb", "symptoms.md"],
            id="directory-with-dot-and-slash",
        ),
        pytest.param(
            ["symptoms.md", "latest.rdb"],
            ["logs/backend.log", "redis/dump.rdb"],
            id="files",
        ),
        pytest.param(
            ["log"],
            ["latest.rdb", "logs/backend.log", "redis/dump.rdb", "symptoms.md"],
            id="prefix-is-not-a-match",
        ),
    ],
)
def test_scan_folder_exclude(incident, exclude, expected_paths):
    normalized = capture_manifest.normalize_exclude(exclude)
    entries, _warnings = capture_manifest.scan_folder(str(incident), normalized)
    assert [entry["path"] for entry in entries] == expected_paths


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param("/etc", id="absolute"),
        pytest.param("../other", id="parent"),
        pytest.param("logs/../../x", id="parent-inside"),
        pytest.param("./", id="folder-itself"),
    ],
)
def test_normalize_exclude_rejects(entry):
    with pytest.raises(capture_manifest.ManifestError) as error:
        capture_manifest.normalize_exclude([entry])
    assert str(error.value) == (
        f"exclude entry {entry!r} is not a path inside the folder; give a relative "
        "path such as 'logs/live'"
    )


@pytest.mark.parametrize(
    "name, line",
    [
        pytest.param("plain.txt", "{digest}  plain.txt\n", id="plain"),
        pytest.param("a\\b", "\\{digest}  a\\\\b\n", id="backslash"),
        pytest.param("new\nline", "\\{digest}  new\\nline\n", id="newline"),
        pytest.param("cr\rx", "\\{digest}  cr\\rx\n", id="carriage-return"),
    ],
)
def test_render_checksums_escapes_names(name, line):
    digest = sha256(b"x")
    entries = [{"path": name, "type": "file", "size": 1, "sha256": digest}]
    rendered = capture_manifest.render_checksums(entries)
    assert rendered == line.format(digest=digest).encode()


def test_render_checksums_skips_symlinks():
    entries = [{"path": "link", "type": "symlink", "target": "x"}]
    assert capture_manifest.render_checksums(entries) == b""


def test_present_writes_manifest(incident, capsys):
    result = run_main(
        {"path": str(incident), "metadata": {"incident": "drill-1", "n": 2}}, capsys
    )
    assert result["changed"] is True
    assert result["files"] == 4
    assert result["total_bytes"] == 39
    assert result["manifest_path"] == str(incident / "manifest.json")
    assert result["checksums_path"] == str(incident / "SHA256SUMS")

    manifest = read_manifest(incident)
    assert manifest["format"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["created"])
    assert manifest["metadata"] == {"incident": "drill-1", "n": 2}
    assert manifest["exclude"] == []
    assert manifest["total_bytes"] == 39
    assert [entry["path"] for entry in manifest["files"]] == [
        "latest.rdb",
        "logs/backend.log",
        "redis/dump.rdb",
        "symptoms.md",
    ]
    for name in ("manifest.json", "SHA256SUMS"):
        assert stat.S_IMODE(os.stat(incident / name).st_mode) == 0o600


def test_present_disk_full_names_free_space(incident, capsys, monkeypatch):
    """A full disk while the records are written fails with the free space."""

    def full_disk(path, data, backup=False, mode=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(capture_manifest, "atomic_write", full_disk)
    result = run_main(
        {
            "path": str(incident),
            "documents": {"symptoms-2.md": "# More symptoms\n"},
        },
        capsys,
    )

    assert result["failed"] is True
    message = result["msg"]
    assert message.startswith(
        f"writing in {str(incident)!r} failed because the disk is full: "
        "[Errno 28] No space left on device. "
    )
    assert "MiB (" in message
    assert "free on the filesystem of " in message
    assert "Free space there, then run again." in message
    assert "exception" not in result
    assert not (incident / "manifest.json").exists()
    assert not (incident / "SHA256SUMS").exists()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs sha256sum")
def test_present_checksums_pass_sha256sum(incident, capsys):
    (incident / "odd\\name\nhere").write_bytes(b"odd")
    run_main({"path": str(incident)}, capsys)
    check = subprocess.run(
        ["sha256sum", "--strict", "-c", "SHA256SUMS"],
        cwd=incident,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 4


def test_present_is_idempotent(incident, capsys):
    run_main({"path": str(incident), "metadata": {"incident": "drill-1"}}, capsys)
    before = os.stat(incident / "manifest.json")
    content = (incident / "manifest.json").read_bytes()
    result = run_main(
        {"path": str(incident), "metadata": {"incident": "drill-1"}}, capsys
    )
    after = os.stat(incident / "manifest.json")
    assert result["changed"] is False
    assert after.st_ino == before.st_ino
    assert (incident / "manifest.json").read_bytes() == content


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda root: (root / "symptoms.md").write_bytes(b"#"), id="file"),
        pytest.param(lambda root: (root / "new.txt").write_bytes(b"n"), id="new-file"),
        pytest.param(lambda root: os.unlink(root / "latest.rdb"), id="removed-link"),
    ],
)
def test_present_rewrites_after_change(incident, capsys, change):
    run_main({"path": str(incident)}, capsys)
    change(incident)
    result = run_main({"path": str(incident)}, capsys)
    assert result["changed"] is True


def test_present_rewrites_after_metadata_change(incident, capsys):
    run_main({"path": str(incident), "metadata": {"incident": "a"}}, capsys)
    result = run_main({"path": str(incident), "metadata": {"incident": "b"}}, capsys)
    assert result["changed"] is True
    assert read_manifest(incident)["metadata"] == {"incident": "b"}


def test_present_restores_checksums_file(incident, capsys):
    run_main({"path": str(incident)}, capsys)
    manifest_content = (incident / "manifest.json").read_bytes()
    expected = (incident / "SHA256SUMS").read_bytes()
    os.unlink(incident / "SHA256SUMS")
    result = run_main({"path": str(incident)}, capsys)
    assert result["changed"] is True
    assert (incident / "SHA256SUMS").read_bytes() == expected
    assert (incident / "manifest.json").read_bytes() == manifest_content


def test_present_fixes_mode(incident, capsys):
    run_main({"path": str(incident)}, capsys)
    os.chmod(incident / "manifest.json", 0o644)
    result = run_main({"path": str(incident)}, capsys)
    assert result["changed"] is True
    assert stat.S_IMODE(os.stat(incident / "manifest.json").st_mode) == 0o600


def test_present_replaces_damaged_manifest(incident, capsys):
    (incident / "manifest.json").write_text("{not json")
    result = run_main({"path": str(incident)}, capsys)
    assert result["changed"] is True
    assert read_manifest(incident)["format"] == 1
    assert capture_manifest_warnings(result) == [
        (
            f"replacing the damaged manifest: {incident / 'manifest.json'} is not "
            "valid JSON (Expecting property name enclosed in double quotes: line 1 "
            "column 2 (char 1))"
        )
    ]


def test_present_check_mode_writes_nothing(incident, capsys):
    result = run_main({"path": str(incident), "_ansible_check_mode": True}, capsys)
    assert result["changed"] is True
    assert not (incident / "manifest.json").exists()
    assert not (incident / "SHA256SUMS").exists()


def test_present_check_mode_predicts_no_change(incident, capsys):
    run_main({"path": str(incident)}, capsys)
    result = run_main({"path": str(incident), "_ansible_check_mode": True}, capsys)
    assert result["changed"] is False


def test_present_diff_lists_entries(incident, capsys):
    result = run_main(
        {"path": str(incident), "_ansible_check_mode": True, "_ansible_diff": True},
        capsys,
    )
    assert result["diff"]["before"] == ""
    assert result["diff"]["after"].splitlines() == [
        "symlink  latest.rdb -> redis/dump.rdb",
        f"{sha256(b'error: signing key' + bytes([10]))}  logs/backend.log",
        f"{sha256(b'REDIS0011')}  redis/dump.rdb",
        f"{sha256(b'# Symptoms' + bytes([10]))}  symptoms.md",
    ]


def test_present_rejects_manifest_symlink(incident, tmp_path, capsys):
    os.symlink(tmp_path / "elsewhere.json", incident / "manifest.json")
    result = run_main({"path": str(incident)}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        f"{incident / 'manifest.json'} is a symlink; remove it so that the manifest "
        "is written inside the folder"
    )


def test_present_rejects_missing_folder(tmp_path, capsys):
    missing = tmp_path / "nope"
    result = run_main({"path": str(missing)}, capsys)
    assert result["msg"] == (
        f"path {str(missing)!r} does not exist or is not a directory; give the "
        "incident folder"
    )


def test_verified_passes_on_untouched_folder(incident, capsys):
    run_main({"path": str(incident)}, capsys)
    result = run_main({"path": str(incident), "state": "verified"}, capsys)
    assert "failed" not in result
    assert result["changed"] is False
    assert result["verified"] is True
    assert result["mismatches"] == []
    assert result["files"] == 4
    assert result["total_bytes"] == 39


def test_verified_lists_every_mismatch(incident, capsys):
    run_main({"path": str(incident)}, capsys)
    os.unlink(incident / "logs" / "backend.log")
    (incident / "redis" / "dump.rdb").write_bytes(b"REDIS0012")
    (incident / "symptoms.md").write_bytes(b"# Symptoms, edited\n")
    (incident / "extra.txt").write_bytes(b"?")
    os.unlink(incident / "latest.rdb")
    os.symlink("symptoms.md", incident / "latest.rdb")

    result = run_main({"path": str(incident), "state": "verified"}, capsys)
    assert result["failed"] is True
    assert result["verified"] is False
    assert result["mismatches"] == [
        {
            "path": "extra.txt",
            "problem": "unlisted",
            "expected": None,
            "actual": "file",
        },
        {
            "path": "latest.rdb",
            "problem": "target",
            "expected": "redis/dump.rdb",
            "actual": "symptoms.md",
        },
        {
            "path": "logs/backend.log",
            "problem": "missing",
            "expected": "file",
            "actual": None,
        },
        {
            "path": "redis/dump.rdb",
            "problem": "checksum",
            "expected": sha256(b"REDIS0011"),
            "actual": sha256(b"REDIS0012"),
        },
        {"path": "symptoms.md", "problem": "size", "expected": 11, "actual": 19},
    ]
    assert result["msg"] == (
        f"{incident} does not match its manifest: 1 missing (logs/backend.log), "
        "3 changed (latest.rdb: target, redis/dump.rdb: checksum, symptoms.md: "
        "size), 1 unlisted (extra.txt); restore the files from a copy you trust, or "
        "record the folder again with state=present if the change is intended"
    )


def test_verified_detects_type_change(incident, capsys):
    run_main({"path": str(incident)}, capsys)
    os.unlink(incident / "symptoms.md")
    os.symlink("redis/dump.rdb", incident / "symptoms.md")
    result = run_main({"path": str(incident), "state": "verified"}, capsys)
    assert result["mismatches"] == [
        {
            "path": "symptoms.md",
            "problem": "type",
            "expected": "file",
            "actual": "symlink",
        }
    ]


def test_verified_detects_edited_checksums_file(incident, capsys):
    run_main({"path": str(incident)}, capsys)
    (incident / "SHA256SUMS").write_text("")
    result = run_main({"path": str(incident), "state": "verified"}, capsys)
    assert result["mismatches"] == [
        {
            "path": "SHA256SUMS",
            "problem": "checksums_file",
            "expected": None,
            "actual": None,
        }
    ]


def test_verified_applies_stored_exclude(incident, capsys):
    run_main({"path": str(incident), "exclude": ["logs"]}, capsys)
    (incident / "logs" / "backend.log").write_bytes(b"more lines\n")
    result = run_main({"path": str(incident), "state": "verified"}, capsys)
    assert result["verified"] is True


def test_verified_applies_exclude_option(incident, capsys):
    run_main({"path": str(incident)}, capsys)
    (incident / "scratch").mkdir()
    (incident / "scratch" / "note.txt").write_bytes(b"later")
    result = run_main(
        {"path": str(incident), "state": "verified", "exclude": ["scratch"]}, capsys
    )
    assert result["verified"] is True


def test_verified_needs_manifest(incident, capsys):
    result = run_main({"path": str(incident), "state": "verified"}, capsys)
    assert result["msg"] == (
        f"{incident / 'manifest.json'} not found; create it with state=present first"
    )


def test_verified_rejects_other_format(incident, capsys):
    (incident / "manifest.json").write_text('{"format": 2}')
    result = run_main({"path": str(incident), "state": "verified"}, capsys)
    assert result["msg"] == (
        f"{incident / 'manifest.json'} has format 2, expected 1; remove it and run "
        "state=present again"
    )


def test_mismatch_message_shortens_long_lists():
    mismatches = [
        capture_manifest.mismatch(f"f{index:02d}", "missing", "file", None)
        for index in range(12)
    ]
    message = capture_manifest.build_mismatch_message("/x", mismatches)
    assert message.startswith(
        "/x does not match its manifest: 12 missing (f00, f01, f02, f03, f04, f05, "
        "f06, f07, f08, f09 and 2 more); "
    )


def test_documents_written_and_listed(tmp_path, capsys):
    result = run_main(
        {
            "path": str(tmp_path),
            "documents": {
                "containers.json": "[]\n",
                "notes/symptoms.md": "# Symptoms\n",
            },
        },
        capsys,
    )

    assert result["changed"] is True
    assert result["documents"] == ["containers.json", "notes/symptoms.md"]
    assert (tmp_path / "notes" / "symptoms.md").read_text() == "# Symptoms\n"
    assert oct((tmp_path / "containers.json").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "notes").stat().st_mode & 0o777) == "0o700"
    listed = [
        entry["path"]
        for entry in json.loads((tmp_path / "manifest.json").read_text())["files"]
    ]
    assert listed == ["containers.json", "notes/symptoms.md"]


def test_documents_unchanged_second_run(tmp_path, capsys):
    args = {"path": str(tmp_path), "documents": {"containers.json": "[]\n"}}
    run_main(args, capsys)

    result = run_main(args, capsys)

    assert result["changed"] is False
    assert result["documents"] == []


@pytest.mark.parametrize(
    "key",
    ["../escape.txt", "/etc/passwd", "a//b", "manifest.json", ""],
    ids=["parent", "absolute", "empty-part", "reserved", "empty"],
)
def test_documents_outside_folder_rejected(tmp_path, capsys, key):
    result = run_main({"path": str(tmp_path), "documents": {key: "x"}}, capsys)

    assert result["failed"] is True

    assert "documents key" in result["msg"]
    assert not (tmp_path.parent / "escape.txt").exists()


def test_documents_check_mode_writes_nothing(tmp_path, capsys):
    result = run_main(
        {
            "path": str(tmp_path),
            "documents": {"a.txt": "x"},
            "_ansible_check_mode": True,
        },
        capsys,
    )

    assert result["changed"] is True
    assert list(tmp_path.iterdir()) == []


def test_copies_written_and_missing_skipped(tmp_path, capsys):
    source = tmp_path / "project"
    source.mkdir()
    (source / ".env.production").write_bytes(b"SECRET=x\n")
    incident = tmp_path / "incident"
    incident.mkdir()

    result = run_main(
        {
            "path": str(incident),
            "copies": [
                {"src": str(source / ".env.production"), "dest": "env/.env.production"},
                {
                    "src": str(source / ".env.local"),
                    "dest": "env/.env.local",
                    "missing": "skip",
                },
            ],
        },
        capsys,
    )

    assert result["documents"] == ["env/.env.production"]
    assert result["missing"] == [str(source / ".env.local")]
    assert (incident / "env" / ".env.production").read_bytes() == b"SECRET=x\n"
    assert oct((incident / "env" / ".env.production").stat().st_mode & 0o777) == "0o600"


def test_copies_missing_source_fails(tmp_path, capsys):
    result = run_main(
        {"path": str(tmp_path), "copies": [{"src": "/nonexistent/x", "dest": "x"}]},
        capsys,
    )

    assert result["failed"] is True
    assert result["msg"] == (
        "copies src '/nonexistent/x' does not exist; fix the path or set "
        "missing=skip for a file that is optional"
    )


def test_documents_key_with_nul_rejected(tmp_path, capsys):
    result = run_main({"path": str(tmp_path), "documents": {"a\x00b": "x"}}, capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        "documents key 'a\\x00b' contains a NUL byte, which no file name can"
        " contain; remove it from the key"
    )
    assert list(tmp_path.iterdir()) == []


def test_copies_src_with_nul_rejected(tmp_path, capsys):
    result = run_main(
        {"path": str(tmp_path), "copies": [{"src": "/tmp/a\x00b", "dest": "copy"}]},
        capsys,
    )

    assert result["failed"] is True
    assert result["msg"] == (
        "copies src '/tmp/a\\x00b' contains a NUL byte, which no path can contain;"
        " remove it from the path"
    )
