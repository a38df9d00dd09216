"""KD Scientific Legato 100 / 200: the 11 Elite driver with the Legato's framing.

Everything the 11 Elite driver does (`irate`/`wrate` with text units, `tvolume`, `svolume`,
`cvolume`, `ivolume`, `irun`, `stp`, `irate lim`) is the Legato's too; this module only
replaces the codec where the Legato differs (Legato 100 user's manual 5617-006 and Legato 200
5617-002, "Pump Chain Commands"; recorded bytes of a real Legato 100):

- request: `[address]command[ args]` CR, the address (1-99) with no separator (`12irat 3.2
  u/m`); none at address 0;
- reply: LF, then each body line `[aa:]text` CR LF, then the prompt line `[aa]<prompt>`, and
  in `poll on` mode an XON (0x11). Address 0 writes no address at all;
- errors: `Argument error: <argument>` (then an indented explanation line), or another body
  line naming an error;
- `version` (three `Key: value` lines) instead of `ver`; `>*` / `<*`: a limit switch stopped
  the motor.

The driver turns `poll on` first, so every reply ends with XON and a framer never has to guess
where a prompt-last reply ends.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pumpctl.drivers.base import (
    AlarmReason,
    Capabilities,
    ProtocolError,
    PumpIdentity,
    PumpState,
    PumpStatus,
)
from pumpctl.drivers.harvard_common import check_address
from pumpctl.drivers.harvard_elite import EliteReply, HarvardEliteDriver, status_for_prompt
from pumpctl.families.kds_legato import SPEC

__all__ = [
    "LegatoDriver",
    "encode_command",
    "legato_frame_length",
    "parse_reply",
    "parse_version",
]

CR, LF, XON = 0x0D, 0x0A, 0x11
#: a reply longer than this without its XON is garbage, not a slow reply
_MAX_REPLY = 512
_PROMPT = re.compile(r"(\d\d)?(T\*|[><]\*|[:><*])")
_BODY = re.compile(r"(?:(\d\d):)?(.*)")


def encode_command(address: int, command: str) -> bytes:
    """`command` CR at address 0, `NNcommand` CR elsewhere (L200: no separator)."""
    check_address(address)
    if not command.isascii() or any(not " " <= ch <= "~" for ch in command):
        raise ValueError(f"Legato commands are printable ASCII, got {command!r}")
    prefix = f"{address}" if address else ""
    return (prefix + command).encode("ascii") + bytes([CR])


def legato_frame_length(buf: bytes) -> int | None:
    """Framer (poll on): a reply ends with its XON."""
    end = buf.find(bytes([XON]))
    if 0 <= end < _MAX_REPLY:
        return end + 1
    return _MAX_REPLY + 1 if len(buf) > _MAX_REPLY else None


def parse_reply(raw: bytes, *, address: int | None = None) -> EliteReply:
    """LF, body lines `[aa:]text` CR LF, prompt `[aa]<prompt>`, XON. Body lines join with LF;
    an error reply's first line names the error (`Argument error: 200`)."""
    if not raw.startswith(b"\n") or not raw.endswith(bytes([XON])):
        raise ProtocolError("reply is not LF ... prompt XON", raw)
    if not all(0x20 <= b <= 0x7E or b in (CR, LF) for b in raw[:-1]):
        raise ProtocolError("reply holds non-printable bytes", raw)
    *lines, prompt_line = raw[1:-1].decode("ascii").split("\r\n")
    m = _PROMPT.fullmatch(prompt_line)
    if m is None:
        raise ProtocolError(f"no prompt in {prompt_line!r}", raw)
    reply_address = int(m[1]) if m[1] else 0
    if address is not None and reply_address != address:
        raise ProtocolError(f"reply from address {reply_address}, expected {address}", raw)
    body = []
    for line in lines:
        b = _BODY.fullmatch(line)
        assert b is not None  # `.*` matches any line without CR/LF
        if b[1] is not None and int(b[1]) != reply_address:
            raise ProtocolError(f"body line from address {b[1]} in a reply from {address}", raw)
        body.append(b[2])
    text = "\n".join(line.strip() for line in body).strip()
    error = text if body and "error" in body[0].lower() else None
    prompt = m[2]
    return EliteReply(reply_address, prompt, body="" if error else text, error=error, raw=text)


def parse_version(text: str) -> tuple[str, str]:
    """`Firmware:      v3.0.6` / `Pump address:  0` / `Serial number: D101754` ->
    ("Legato D101754", "3.0.6")."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    firmware = fields.get("firmware", "").removeprefix("v")
    if not firmware:
        raise ProtocolError(f"no firmware line in version reply {text!r}")
    serial = fields.get("serial number", "")
    return (f"Legato {serial}".strip(), firmware)


class LegatoDriver(HarvardEliteDriver):
    """One Legato at `address` (0..99): the 11 Elite driver's sequencing, the Legato's codec.

    `identify` turns `poll on` (XON after every reply; psp, built from a real Legato, does the
    same) and reads `version`. `>*` reads as an empty syringe (the infuse limit switch), `<*`
    as the withdraw end. A Legato 100/101 is infuse-only: it refuses `wrun` (CommandRejected).
    """

    family = SPEC.model
    default_baudrate: ClassVar[int] = SPEC.line.baud
    stopped_prompts: ClassVar[frozenset[str]] = frozenset({":", "*", "T*", ">*", "<*"})
    line_hint: ClassVar[str] = "Legato usual 115200"

    _encode = staticmethod(encode_command)
    _framer = staticmethod(legato_frame_length)
    _decode = staticmethod(parse_reply)

    @property
    def capabilities(self) -> Capabilities:
        caps = super().capabilities
        return caps.model_copy(update={"accuracy_percent": SPEC.accuracy_percent})

    async def identify(self) -> PumpIdentity:
        """A bare CR first: L100, "if you manipulate the touchscreen, you must reestablish
        communications (<CR> will do this)", and it ends whatever half line the pump holds.
        `poll on` is idempotent, so a garbled answer to it is asked again."""
        await self.transport.send(b"\r")  # its prompt line is dropped before the next request
        await self._send("poll on", query=True)
        reply = await self._send("version", query=True, expect=parse_version)
        model, firmware = parse_version(reply.body)
        self._can_withdraw = True
        return PumpIdentity(model=model, firmware=firmware, address=self.address)

    def _status(self, reply: EliteReply) -> PumpStatus:
        if reply.prompt == ">*":
            return PumpStatus(state=PumpState.ALARM, alarm=AlarmReason.EMPTY, raw=reply.prompt)
        if reply.prompt == "<*":
            return PumpStatus(state=PumpState.ALARM, alarm=AlarmReason.OTHER, raw=reply.prompt)
        return status_for_prompt(reply.prompt, paused=self.paused, raw=reply.raw)
