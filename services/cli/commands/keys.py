"""Generate a CURVE keypair for a bus or control socket beyond loopback.

  kxfeed keys [--out DIR] [--name NAME] [--force]

Writes DIR/NAME.key (the public key, 0644: give it out) and DIR/NAME.key_secret (the keypair,
0600: never give it out) in ZeroMQ's certificate format (Z85 keys, as zmq.auth writes them), then
prints the [curve] lines that use them. It refuses to overwrite either file without --force, and
never prints a secret key.

A bus or control endpoint that is not loopback (127.0.0.0/8, ::1, localhost, ipc://) needs keys:
one "server" keypair for the hosts that bind the bus or a control socket beyond loopback, and a
client keypair per host (or per process) that connects; each client's NAME.key goes into the
servers' allowed_clients directory, and the server's NAME.key to every client. A process missing
a key it needs refuses to start, naming the key.

examples:
  kxfeed keys --out /etc/kxfeed/curve --name server
  kxfeed keys --out /etc/kxfeed/curve --name research-1
  kxfeed keys --out /etc/kxfeed/curve/clients --name collector --force
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from services.cli.common import subcommand
from shared.curve import fingerprint, load_public, write_keypair

#: A file name, not a path: letters, digits, '.', '_', '-'.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")


def _name(text: str) -> str:
    if not _NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a key name: letters, digits, '.', '_' and '-', up to 64 (no '/')"
        )
    return text


def register(sub: Any) -> None:
    p = subcommand(sub, "keys", __doc__)
    p.add_argument(
        "--out", metavar="DIR", default=".", help="directory to write the two files in (default: .)"
    )
    p.add_argument("--name", type=_name, default="kxfeed", help="file name stem: NAME.key, NAME.key_secret")
    p.add_argument(
        "--force", action="store_true", help="overwrite NAME.key and NAME.key_secret if they exist"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not out.is_dir():
        print(f"kxfeed keys: {out} is not a directory (create it first: mkdir -m 700 {out})", file=sys.stderr)
        return 2
    try:
        public_path, secret_path = write_keypair(out, args.name, force=args.force)
    except FileExistsError as exc:
        print(f"kxfeed keys: {exc.args[0]} exists: not overwritten (--force replaces it)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kxfeed keys: cannot write in {out}: {exc.strerror}", file=sys.stderr)
        return 1
    public = load_public(public_path, "kxfeed keys")
    print(f"wrote {public_path} (public key {fingerprint(public)}..., give it out)")
    print(f"wrote {secret_path} (secret, mode 0600: keep it on this host)")
    print()
    print("# on a host that binds the bus or a control socket beyond loopback, with this as its server key:")
    print("[curve]")
    print(f'server_key = "{secret_path.resolve()}"')
    print('allowed_clients = "/etc/kxfeed/curve/clients"   # a directory of the clients\' NAME.key files')
    print()
    print("# or, in a process that connects with this as its client key (copy")
    print(f"# {public_path.name} into the server's allowed_clients directory):")
    print("[curve]")
    print(f'client_key = "{secret_path.resolve()}"')
    print('server_public_key = "/etc/kxfeed/curve/server.key"   # the server\'s NAME.key')
    return 0
