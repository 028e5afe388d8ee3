"""CCSDS CFDP class 2 (acknowledged) over real UDP, for `orbitdock bench cfdp`.

Both entities run in this one process, each with its own UDP socket: the sender (entity 1)
sends to the link emulator's ground-facing port, the receiver (entity 2) to its flight-facing
port, and the emulator forwards between them. The CFDP state machines are cfdp-py's (the
`cfdppy` module); this script only moves their PDUs, paced to the link's rate: each side sends
its datagrams no faster than `--rate` bits per second (a token bucket one datagram deep), which
is the link's own rate, so the emulator's queue stays short.

It prints one JSON line: the seconds from the Put request to the receiver's completion of the
file (`received_s`) and to the sender's (`finished_s`, once the Finished PDU came back), the
datagrams and bytes each side sent, and any faults the handlers declared.
"""

import argparse
import json
import select
import socket
import sys
import time
from pathlib import Path

from cfdppy import (
    CfdpUserBase,
    IndicationConfig,
    LocalEntityConfig,
    PutRequest,
    RemoteEntityConfig,
    RemoteEntityConfigTable,
)
from cfdppy.exceptions import (
    InvalidNakPdu,
    InvalidPduForDestHandler,
    InvalidPduForSourceHandler,
    InvalidTransactionSeqNum,
    PduIgnoredForDest,
    PduIgnoredForSource,
)
from cfdppy.handler.dest import DestHandler
from cfdppy.handler.source import SourceHandler
from cfdppy.mib import CheckTimerProvider, DefaultFaultHandlerBase, EntityType
from spacepackets.cfdp import ChecksumType, ConditionCode, TransmissionMode
from spacepackets.cfdp.pdu import PduFactory
from spacepackets.countdown import Countdown
from spacepackets.seqcount import SeqCountProvider
from spacepackets.util import UnsignedByteField


# A PDU a handler refuses in its state (a duplicate, an ACK it no longer waits for) is counted
# and dropped, as a CFDP entity would.
IGNORED = (
    InvalidNakPdu,
    InvalidPduForDestHandler,
    InvalidPduForSourceHandler,
    InvalidTransactionSeqNum,
    PduIgnoredForDest,
    PduIgnoredForSource,
    ValueError,
)


def parse_addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


class Faults(DefaultFaultHandlerBase):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def notice_of_suspension_cb(self, tid, cond, progress):
        self.log.append(f"suspension {cond!r} at {progress}")

    def notice_of_cancellation_cb(self, tid, cond, progress):
        self.log.append(f"cancellation {cond!r} at {progress}")

    def abandoned_cb(self, tid, cond, progress):
        self.log.append(f"abandoned {cond!r} at {progress}")

    def ignore_cb(self, tid, cond, progress):
        self.log.append(f"ignored {cond!r} at {progress}")


class Timers(CheckTimerProvider):
    def __init__(self, seconds):
        self.seconds = seconds

    def provide_check_timer(self, local_entity_id, remote_entity_id, entity_type: EntityType):
        return Countdown.from_seconds(self.seconds)


class User(CfdpUserBase):
    """Records when the transaction finished; every other indication is ignored."""

    def __init__(self):
        super().__init__()
        self.finished_at = None
        self.finished = None

    def transaction_indication(self, params):
        pass

    def eof_sent_indication(self, transaction_id):
        pass

    def transaction_finished_indication(self, params):
        self.finished_at = time.monotonic()
        self.finished = params.finished_params

    def metadata_recv_indication(self, params):
        pass

    def file_segment_recv_indication(self, params):
        pass

    def report_indication(self, transaction_id, status_report):
        pass

    def suspended_indication(self, transaction_id, cond_code):
        pass

    def resumed_indication(self, transaction_id, progress):
        pass

    def fault_indication(self, transaction_id, cond_code, progress):
        pass

    def abandoned_indication(self, transaction_id, cond_code, progress):
        pass

    def eof_recv_indication(self, transaction_id):
        pass


class Side:
    """One entity's socket, the datagrams it has to send, and its pace."""

    def __init__(self, bind, peer, rate_bps):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.sock.setblocking(False)
        self.peer = peer
        self.rate = rate_bps / 8.0
        self.queue = []
        self.next_at = 0.0
        self.datagrams = 0
        self.bytes = 0

    def take(self, handler):
        """Moves every PDU the handler made into this side's queue (the handler refuses a new
        packet while any waits)."""
        while handler.packets_ready:
            self.queue.append(handler.get_next_packet().pack())

    def send_due(self, now):
        """Sends what the pace allows now; returns when the next may go."""
        while self.queue and now >= self.next_at:
            d = self.queue.pop(0)
            self.sock.sendto(d, self.peer)
            self.datagrams += 1
            self.bytes += len(d)
            # A bucket one datagram deep: a wake-up a little late does not lose the link's
            # time, and an idle side does not save up a burst.
            self.next_at = max(self.next_at, now - len(d) / self.rate) + len(d) / self.rate
        return self.next_at if self.queue else None

    def receive(self):
        out = []
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except BlockingIOError:
                return out
            out.append(data)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sender-bind", type=parse_addr, required=True)
    p.add_argument("--sender-peer", type=parse_addr, required=True)
    p.add_argument("--receiver-bind", type=parse_addr, required=True)
    p.add_argument("--receiver-peer", type=parse_addr, required=True)
    p.add_argument("--file", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rate", type=int, required=True, help="bits per second, each way")
    p.add_argument("--segment", type=int, default=1024)
    p.add_argument("--timer", type=float, default=2.0, help="ACK, NAK and check timers, s")
    p.add_argument("--deadline", type=float, default=600.0, help="give up after, s")
    a = p.parse_args()

    faults = []
    source_id = UnsignedByteField(1, 2)
    dest_id = UnsignedByteField(2, 2)

    def remote(entity):
        return RemoteEntityConfig(
            entity_id=entity,
            max_file_segment_len=a.segment,
            max_packet_len=a.segment + 64,
            closure_requested=True,
            crc_on_transmission=False,
            default_transmission_mode=TransmissionMode.ACKNOWLEDGED,
            crc_type=ChecksumType.CRC_32,
            positive_ack_timer_interval_seconds=a.timer,
            positive_ack_timer_expiration_limit=1000,
            check_limit=1000,
            immediate_nak_mode=True,
            nak_timer_interval_seconds=a.timer,
            nak_timer_expiration_limit=1000,
        )

    indications = IndicationConfig()
    source_user, dest_user = User(), User()
    source = SourceHandler(
        LocalEntityConfig(source_id, indications, Faults(faults)),
        source_user,
        RemoteEntityConfigTable([remote(dest_id)]),
        Timers(a.timer),
        SeqCountProvider(16),
    )
    dest = DestHandler(
        LocalEntityConfig(dest_id, indications, Faults(faults)),
        dest_user,
        RemoteEntityConfigTable([remote(source_id)]),
        Timers(a.timer),
    )
    sender = Side(a.sender_bind, a.sender_peer, a.rate)
    receiver = Side(a.receiver_bind, a.receiver_peer, a.rate)
    ignored = 0

    start = time.monotonic()
    source.put_request(
        PutRequest(
            destination_id=dest_id,
            source_file=a.file.resolve(),
            dest_file=a.out.resolve(),
            trans_mode=TransmissionMode.ACKNOWLEDGED,
            closure_requested=True,
        )
    )
    while source_user.finished_at is None:
        now = time.monotonic()
        if now - start > a.deadline:
            break
        # What arrived: PDUs for the receiver, then for the sender.
        for d in receiver.receive():
            try:
                dest.state_machine(PduFactory.from_raw(d))
            except IGNORED:
                ignored += 1
            receiver.take(dest)
        for d in sender.receive():
            try:
                source.state_machine(PduFactory.from_raw(d))
            except IGNORED:
                ignored += 1
            sender.take(source)
        # Timers, and the sender's next file data PDU once its queue is empty (the handler
        # makes one per call, leaving the flow control to its user).
        dest.state_machine()
        receiver.take(dest)
        if not sender.queue:
            source.state_machine()
            sender.take(source)
        now = time.monotonic()
        wake = [t for t in (sender.send_due(now), receiver.send_due(now)) if t is not None]
        timeout = max(0.0, min(wake) - time.monotonic()) if wake else 0.005
        select.select([sender.sock, receiver.sock], [], [], min(timeout, 0.005))

    def since(t):
        return None if t is None else t - start

    condition = dest_user.finished.condition_code if dest_user.finished else None
    print(
        json.dumps(
            {
                "received_s": since(dest_user.finished_at),
                "finished_s": since(source_user.finished_at),
                "complete": condition == ConditionCode.NO_ERROR,
                "sender_datagrams": sender.datagrams,
                "sender_bytes": sender.bytes,
                "receiver_datagrams": receiver.datagrams,
                "receiver_bytes": receiver.bytes,
                "ignored_pdus": ignored,
                "faults": faults,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
