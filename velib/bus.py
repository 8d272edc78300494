"""`FastBus`: dbus-next's asyncio MessageBus with a faster read and write path.

A Venus service answers a stream of tiny method calls (GetValue, GetItems, SetValue) and sends
bursts of signals. dbus-next 0.2 spends most of that time outside our code: it recreates its
unmarshaller per message and reads through a buffered stream a few bytes at a time, parses every
header generically, and defers every write to the next event-loop turn. FastBus keeps dbus-next's
connection, authentication, name handling, proxies and message dispatch, and changes only:

- reading: one persistent receive buffer, `recv` in large chunks, headers parsed with `struct`;
  bodies of calls with no arguments or a single simple variant (SetValue) are decoded directly,
  everything else by dbus-next's own Unmarshaller on the message bytes;
- writing: when nothing is queued the message goes straight to the socket (the rest, if the
  socket is full, through dbus-next's writer); `send_many` writes a batch in one system call.
"""
from __future__ import annotations

import array
import io
import socket
import struct

from dbus_next import Message, MessageFlag, MessageType
from dbus_next._private.unmarshaller import Unmarshaller
from dbus_next.aio import MessageBus
from dbus_next.signature import SignatureTree

from .values import _variant

_header = struct.Struct("<4BIII")           # endian, type, flags, version, body len, serial, fields len
_u32 = struct.Struct("<I").unpack_from
_i32 = struct.Struct("<i").unpack_from
_i64 = struct.Struct("<q").unpack_from
_u64 = struct.Struct("<Q").unpack_from
_f64 = struct.Struct("<d").unpack_from

_MESSAGE_TYPES = {t.value: t for t in MessageType}
_FLAGS = {}
_new_message = Message.__new__
_MAX_MESSAGE = 128 * 1024 * 1024
_CHUNK = 65536


def _flags(value: int) -> MessageFlag:
    flag = _FLAGS.get(value)
    if flag is None:
        flag = _FLAGS[value] = MessageFlag(value)
    return flag


def _simple_variant(buf, base: int, offset: int):
    """Decode a variant of a basic type at `offset` of the message starting at `base`; None if
    it is not one (use the generic unmarshaller then). Returns (signature, value)."""
    sig_len = buf[offset]
    sig = buf[offset + 1:offset + 1 + sig_len].decode("ascii")
    pos = offset + 2 + sig_len
    if sig in ("i", "b", "u"):
        pos += -(pos - base) & 3
        (number,) = (_i32 if sig == "i" else _u32)(buf, pos)
        return sig, (number != 0) if sig == "b" else number
    if sig in ("d", "x", "t"):
        pos += -(pos - base) & 7
        return sig, {"d": _f64, "x": _i64, "t": _u64}[sig](buf, pos)[0]
    if sig == "s":
        pos += -(pos - base) & 3
        (length,) = _u32(buf, pos)
        return sig, buf[pos + 4:pos + 4 + length].decode("utf-8")
    return None


class FastBus(MessageBus):
    """Drop-in dbus-next aio MessageBus; see the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rx = bytearray()
        self._chunk = memoryview(bytearray(_CHUNK))   # reused: no allocation per read
        # dbus-next's writer treats a full socket (BlockingIOError) as a fatal error and drops
        # the connection when a burst fills the socket buffer; ours waits for writable.
        self._writer.write_callback = self._write_ready

    # ---- reading ---------------------------------------------------------------------------

    def _message_reader(self):
        try:
            chunk = self._chunk
            while True:
                try:
                    size = self._sock.recv_into(chunk)
                except (BlockingIOError, InterruptedError):
                    break
                if not size:
                    raise EOFError("the bus closed the connection")
                self._rx += chunk[:size]
                if size < _CHUNK:
                    break
            self._dispatch_buffer()
        except Exception as exc:
            self._finalize(exc)

    def _dispatch_buffer(self) -> None:
        rx = self._rx
        offset = 0
        size = len(rx)
        try:
            while size - offset >= 16:
                endian, kind, flags, version, body_len, serial, fields_len = _header.unpack_from(
                    rx, offset)
                header_len = 16 + fields_len              # alignment is relative to the
                header_end = offset + header_len          # message's own start
                body_start = header_end + (-header_len & 7)
                end = body_start + body_len
                if end - offset > _MAX_MESSAGE:
                    raise ValueError("D-Bus message too large")
                if end > size:
                    break
                if endian == 0x6C:  # 'l'
                    message = self._parse(rx, offset, kind, flags, serial, header_end,
                                          body_start, end)
                else:
                    message = self._parse_generic(rx[offset:end])
                offset = end
                self._on_message(message)
        finally:
            if offset:
                del rx[:offset]

    def _parse(self, buf, start, kind, flags, serial, header_end, body_start, end) -> Message:
        path = interface = member = error_name = destination = sender = None
        reply_serial = None
        signature = ""
        pos = start + 16
        while pos < header_end:
            pos += -(pos - start) & 7
            code = buf[pos]
            sig_len = buf[pos + 1]
            value_at = pos + 3 + sig_len
            if code == 5:  # reply serial, 'u'
                value_at += -(value_at - start) & 3
                reply_serial = _u32(buf, value_at)[0]
                pos = value_at + 4
                continue
            if code == 8:  # signature, 'g'
                length = buf[value_at]
                signature = buf[value_at + 1:value_at + 1 + length].decode("ascii")
                pos = value_at + length + 2
                continue
            if code in (1, 2, 3, 4, 6, 7):  # 'o' / 's'
                value_at += -(value_at - start) & 3
                (length,) = _u32(buf, value_at)
                text = buf[value_at + 4:value_at + 4 + length].decode("utf-8")
                pos = value_at + 4 + length + 1
                if code == 1:
                    path = text
                elif code == 2:
                    interface = text
                elif code == 3:
                    member = text
                elif code == 4:
                    error_name = text
                elif code == 6:
                    destination = text
                else:
                    sender = text
                continue
            # unix fds or an unknown field: let dbus-next handle the whole message
            return self._parse_generic(buf[start:end])

        body = self._decode_body(buf, start, kind, signature, body_start, end)
        if body is None:
            return self._parse_generic(buf[start:end])

        message = _new_message(Message)
        message.destination = destination
        message.path = path
        message.interface = interface
        message.member = member
        message.message_type = _MESSAGE_TYPES[kind]
        message.flags = _flags(flags)
        message.error_name = error_name
        message.reply_serial = reply_serial
        message.sender = sender
        message.unix_fds = []
        message.signature = signature
        message.signature_tree = SignatureTree._get(signature)
        message.body = body
        message.serial = serial
        return message

    def _decode_body(self, buf, start, kind, signature, body_start, end) -> list | None:
        """The body of the message at `start` as dbus-next gives it, or None to leave the whole
        message to dbus-next. Here: an empty body and a method call with one variant of a basic
        type (SetValue); `velib.monitor` decodes more."""
        if signature == "":
            return []
        if signature == "v" and kind == 1 and body_start < end:
            decoded = _simple_variant(buf, start, body_start)
            if decoded is not None:
                return [_variant(decoded[0], decoded[1])]
        return None

    @staticmethod
    def _parse_generic(data) -> Message:
        unmarshaller = Unmarshaller(io.BytesIO(bytes(data)))
        unmarshaller._unmarshall()
        return unmarshaller.message

    # ---- writing ---------------------------------------------------------------------------

    def _write_ready(self) -> None:
        """The socket is writable: write queued messages until done or the socket is full."""
        writer = self._writer
        try:
            while True:
                if writer.buf is None:
                    if writer.messages.qsize() == 0:
                        self._loop.remove_writer(self._fd)
                        return
                    data, unix_fds, future = writer.messages.get_nowait()
                    writer.unix_fds = unix_fds
                    writer.buf = memoryview(data)
                    writer.offset = 0
                    writer.fut = future
                try:
                    if writer.unix_fds and self._negotiate_unix_fd:
                        ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    array.array("i", writer.unix_fds))]
                        writer.offset += self._sock.sendmsg([writer.buf[writer.offset:]], ancdata)
                        writer.unix_fds = None
                    else:
                        writer.offset += self._sock.send(writer.buf[writer.offset:])
                except (BlockingIOError, InterruptedError):
                    return  # full: called again when writable
                if writer.offset < len(writer.buf):
                    return
                writer.buf = None
                if writer.fut is not None and not writer.fut.done():
                    writer.fut.set_result(None)
        except Exception as exc:
            if writer.fut is not None and not writer.fut.done():
                writer.fut.set_exception(exc)
            self._finalize(exc)

    def send(self, msg):
        if not msg.serial:
            msg.serial = self.next_serial()
        return self._write(msg._marshall(negotiate_unix_fd=self._negotiate_unix_fd),
                           bool(getattr(msg, "unix_fds", None)), msg)

    def send_many(self, messages):
        """Send several messages (velib's RawMessage or dbus-next's) in one write; returns
        a future that is done once they are written."""
        chunks = []
        for msg in messages:
            if not msg.serial:
                msg.serial = self.next_serial()
            chunks.append(msg._marshall(negotiate_unix_fd=self._negotiate_unix_fd))
        return self._write(b"".join(chunks), False, None)

    def _write(self, data: bytes, has_fds: bool, msg):
        future = self._loop.create_future()
        writer = self._writer
        if (has_fds or not self.unique_name or writer.buf is not None
                or writer.messages.qsize() or not self.connected):
            # dbus-next's path: queued, written when the socket is writable
            writer.messages.put_nowait((data, list(getattr(msg, "unix_fds", []) or []),
                                        future))
            if self.unique_name:
                self._loop.add_writer(self._fd, self._write_ready)
            return future
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            future.set_exception(exc)
            self._finalize(exc)
            return future
        if sent == len(data):
            future.set_result(None)
        else:
            writer.messages.put_nowait((data[sent:], [], future))
            self._loop.add_writer(self._fd, self._write_ready)
        return future
