"""A real AsyncSSH server for the tests (Debian's python3-asyncssh; run with /usr/bin/python3).

AsyncSSH sends SSH_MSG_IGNORE before every encrypted packet, key exchange packets of a re-key
included, and negotiates strict key exchange (kex-strict-s-v00@openssh.com) when the client
offers it. `rekey_bytes` makes it re-key mid-stream.

Usage: asyncssh-server.py DIR REKEY_BYTES
  DIR holds authorized_keys (read) and ssh_host_ed25519_key (written). Prints one line
  `LISTENING <port> <host public key line>` once it accepts connections on 127.0.0.1.
  An exec request `cat PATH` writes the file's bytes to stdout, exits 0 and closes;
  anything else exits 127.
"""

import asyncio
import os
import sys

import asyncssh


async def handle(process: asyncssh.SSHServerProcess) -> None:
    command = process.command or ""
    if command.startswith("cat "):
        with open(command[4:], "rb") as f:
            while True:
                chunk = f.read(32768)
                if not chunk:
                    break
                process.stdout.write(chunk)
                await process.stdout.drain()
        process.exit(0)
    else:
        process.stderr.write(b"unknown command\n")
        process.exit(127)


async def main() -> None:
    directory, rekey_bytes = sys.argv[1], int(sys.argv[2])
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = os.path.join(directory, "ssh_host_ed25519_key")
    key.write_private_key(key_path)
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[key_path],
        authorized_client_keys=os.path.join(directory, "authorized_keys"),
        process_factory=handle,
        encoding=None,
        rekey_bytes=rekey_bytes,
        allow_pty=False,
    )
    port = server.sockets[0].getsockname()[1]
    public = key.export_public_key("openssh").decode().strip()
    print(f"LISTENING {port} {public}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
