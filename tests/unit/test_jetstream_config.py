"""[jetstream]: off by default (the default run needs no NATS), checked settings, stream configs."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from services import registry
from services.jetstream.streams import problems, redact, stream_config, stream_of_kind
from shared.config import Config, load_config
from shared.jetstream_config import JetStreamConfig, StreamClass
from tests.support.procs import ROOT


def test_the_bridge_runs_only_when_enabled() -> None:
    default = load_config(str(ROOT / "config" / "default.toml"))
    assert not default.jetstream.enabled
    assert "jetstream" in registry.available()
    assert "jetstream" not in registry.default_workers("sim")
    assert "jetstream" not in registry.default_workers("sim", opted_in=registry.opted_in(default))
    on = msgspec.convert({"jetstream": {"enabled": True}}, Config)
    assert registry.default_workers("sim", opted_in=registry.opted_in(on))[-1] == "jetstream"


def test_the_defaults_are_valid_and_mirror_the_durable_kinds() -> None:
    cfg = JetStreamConfig()
    assert problems(cfg) == []
    assert set(stream_of_kind(cfg)) == {"snap", "delta", "trade", "ticker", "lifecycle", "evlifecycle", "fee",
                                        "gap", "signal"}  # fmt: skip
    sc = stream_config(cfg.subject_prefix, cfg.streams[0])
    assert sc.name == "KXFEED_BOOK" and sc.subjects == ["kxfeed.snap.>", "kxfeed.delta.>"]
    assert sc.duplicate_window == 900.0 and sc.max_age == 86_400.0 and sc.num_replicas == 1


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ({"servers": []}, "at least one NATS server"),
        ({"servers": ["http://x"]}, "not a nats://"),
        ({"subject_prefix": "kx.*"}, "subject_prefix"),
        ({"streams": []}, "at least one stream"),
        ({"streams": [{"name": "A.B", "kinds": ["trade"]}]}, "a name is"),
        ({"streams": [{"name": "A", "kinds": ["trade"]}, {"name": "A", "kinds": ["delta"]}]}, "twice"),
        ({"streams": [{"name": "A", "kinds": ["nosuch"]}]}, "unknown kind"),
        ({"streams": [{"name": "A", "kinds": ["tob"]}]}, "not durable"),
        ({"streams": [{"name": "A", "kinds": ["trade"]}, {"name": "B", "kinds": ["trade"]}]}, "in streams"),
        ({"retry_initial_s": 5.0, "retry_max_s": 1.0}, "retry_max_s"),
    ],
)
def test_bad_settings_are_named(section: dict[str, object], says: str) -> None:
    cfg = msgspec.convert(section, JetStreamConfig)
    assert any(says in p for p in problems(cfg)), problems(cfg)


def test_out_of_range_numbers_are_refused_by_the_schema() -> None:
    for bad in ({"replicas": 0}, {"replicas": 9}, {"duplicate_window_s": 0}, {"max_bytes": -2}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"name": "A", "kinds": ["trade"], **bad}, StreamClass)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_inflight": 0}, JetStreamConfig)


def test_server_urls_are_logged_without_credentials() -> None:
    assert redact("nats://user:secret@host:4222") == "nats://***@host:4222"
    assert redact("nats://host:4222") == "nats://host:4222"
    assert "secret" not in redact("tok:secret@host")
    assert any("***" in p and "secret" not in p for p in problems(JetStreamConfig(servers=["http://u:secret@h"])))


def test_kxfeed_up_plans_the_bridge_last_only_when_enabled(tmp_path: Path) -> None:
    from services.cli.common import planned_workers
    from services.supervisor.specs import child_specs
    from tests.support.config import make_config

    off = make_config(tmp_path)
    assert "jetstream" not in [s.name for s in child_specs(off, None)]
    assert "jetstream" not in planned_workers(off)
    on = make_config(tmp_path, jetstream={"enabled": True})
    assert [s.name for s in child_specs(on, None)][-1] == "jetstream"
    assert planned_workers(on)[-1] == "jetstream"


def test_config_check_prints_no_nats_credentials(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "kx.toml"
    path.write_text('[jetstream]\nservers = ["nats://alice:hunter2@h:4222", "nats://s3cr3ttoken@h2:4222"]\n')
    out = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "config", "check", str(path), "--offline"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "nats://***@h:4222" in out.stdout
    assert "hunter2" not in out.stdout + out.stderr and "s3cr3ttoken" not in out.stdout + out.stderr
