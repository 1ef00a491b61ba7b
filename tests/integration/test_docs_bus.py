"""docs/bus.md and `kxfeed schema` are usable: the subscriber example runs, as written and with
the command the doc gives, against a live bus; the field-order tables are the Structs'; the
JSON Schema names every positional field in the order the publishers encode it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cli.busschema import DOC_BEGIN, DOC_END, markdown, schema
from shared.bus import Publisher
from shared.messages import BATCH_ENCODER, KINDS, MESSAGE_TYPES, Trade
from tests.support.busproxy import proxied
from tests.support.procs import ROOT, kxfeed_cmd
from tests.unit.test_messages import _message_strategy

DOC = ROOT / "docs" / "bus.md"


def test_docs_subscriber_example_runs(tmp_path: Path) -> None:
    text = DOC.read_text()
    code = re.search(r"## A subscriber in plain pyzmq \+ msgspec\n\n```python\n(.*?)```", text, re.S)
    assert code, "example block not found"
    command = re.search(r"```sh\n(\S+) subscriber\.py (\S+) (\d+)\n```", text)
    assert command, "the doc does not say how to run the example"
    interpreter, _endpoint, _count = command.groups()
    # The doc's interpreter is the project's venv; this suite runs in that very interpreter
    # (or, outside a checkout with a .venv, in the one kxfeed is installed in).
    python = ROOT / interpreter
    if not python.exists():
        python = Path(sys.executable)
    assert python.parent.samefile(Path(sys.executable).parent), (python, sys.executable)
    script = tmp_path / "subscriber.py"
    script.write_text(code.group(1))

    with proxied(tmp_path, hwm=10_000) as (ctx, xsub, xpub):
        pub = Publisher(ctx, xsub, "docs")
        proc = subprocess.Popen([str(python), str(script), xpub, "3"], stdout=subprocess.PIPE, text=True)
        try:
            assert pub.wait_for_subscriber_sync("trade.X", 15)
            pub.publish_many(
                [
                    Trade(
                        trade_id=f"t{i}",
                        ticker="KXNBAGAME-26NOV03LALBOS-LAL",
                        yes_price=4300,
                        no_price=5700,
                        count=2500,
                        taker_side="yes",
                        ts_recv=time.time_ns(),
                    )
                    for i in range(3)
                ]
            )
            out, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
            pub.close(0)
    lines = out.strip().splitlines()
    assert proc.returncode == 0
    assert lines == [f"trade.KXNBAGAME-26NOV03LALBOS-LAL #{i}: 25 @ $0.4300 taker yes" for i in (1, 2, 3)]


def test_docs_field_order_is_generated_from_the_structs() -> None:
    text = DOC.read_text()
    start, end = text.index(DOC_BEGIN), text.index(DOC_END) + len(DOC_END)
    assert text[start:end] == markdown(), "docs/bus.md is stale: paste `kxfeed schema --markdown` in"
    for kind in KINDS:
        assert f'| `{kind}` | `"{kind}"`' in text, kind


def test_schema_command_names_every_positional_field() -> None:
    res = subprocess.run(kxfeed_cmd("schema"), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    printed = json.loads(res.stdout)
    assert printed == json.loads(json.dumps(schema()))
    assert printed["x-kxfeed-positional"] is True and "POSITIONAL" in printed["description"]
    for cls in MESSAGE_TYPES:
        body = printed["$defs"][cls.__name__]
        names = body["x-kxfeed-fields"]
        # The header, then only the optional fields added to the kind later (after the header, so
        # older payloads still decode positionally).
        at = names.index("pub")
        assert names[0] == "kind" and names[at : at + 5] == ["pub", "epoch", "seq", "ts_exch", "ts_recv"]
        tail = len(names) - (at + 5)
        assert len(cls.__struct_defaults__) >= 5 + tail  # defaults belong to the trailing fields
        assert [i["title"] for i in body["prefixItems"]] == names
        assert f"[{', '.join(names)}]" in body["description"]


_SCHEMA = schema()  # what `kxfeed schema` prints (checked above)
_VALIDATOR = jsonschema.Draft202012Validator(_SCHEMA)  # compiled once: validate() recompiles each call


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__struct_config__.tag)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_named_positions_are_where_the_encoder_puts_each_field(cls: type, data: st.DataObject) -> None:
    msg = data.draw(_message_strategy(cls))
    payload = msgspec.msgpack.decode(BATCH_ENCODER.encode([msg]))  # plain arrays, as a foreign decoder sees
    _VALIDATOR.validate(payload)
    names = _SCHEMA["$defs"][cls.__name__]["x-kxfeed-fields"]
    (array,) = payload
    assert len(array) == len(names)
    for i, name in enumerate(names):
        value = cls.__struct_config__.tag if name == "kind" else getattr(msg, name)
        assert array[i] == msgspec.msgpack.decode(msgspec.msgpack.encode(value)), (name, i)
