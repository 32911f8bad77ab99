"""A pcap of SIS sessions, rebuilt from the fake server's transcripts with scapy.

Capturing on lo would need privileges and would vary with timing; rebuilding the TCP
segments from the bytes each side wrote is deterministic and needs neither. Each session
gets its own client port, the server side port 5066 (so Wireshark picks its s5066sis
dissector without being told), a three-way handshake, one segment per recorded chunk with
correct sequence and acknowledgement numbers, and a FIN each way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap
from sis_server import Transcript

SIS_PORT = 5066
_CLIENT_ISN = 1000
_SERVER_ISN = 50000
_MSS = 1400  # segments longer than this are cut, as a real stack would


def write_sis_pcap(path: Path, transcripts: Iterable[Transcript]) -> int:
    """Write every session to `path`; return the number of packets."""
    packets: list[Packet] = []
    clock = 1_700_000_000.0
    for index, transcript in enumerate(transcripts):
        session = _Session(40000 + index)
        for packet in session.packets(transcript):
            clock += 0.001
            packet.time = clock
            packets.append(packet)
    wrpcap(str(path), packets)
    return len(packets)


class _Session:
    def __init__(self, client_port: int) -> None:
        self.client_port = client_port
        self.seq = {True: _CLIENT_ISN, False: _SERVER_ISN}  # keyed by "from client"

    def _segment(self, from_client: bool, flags: str, payload: bytes = b"") -> Packet:
        sport, dport = (
            (self.client_port, SIS_PORT) if from_client else (SIS_PORT, self.client_port)
        )
        ack = self.seq[not from_client] if "A" in flags else 0
        packet = IP(src="127.0.0.1", dst="127.0.0.1") / TCP(
            sport=sport, dport=dport, seq=self.seq[from_client], ack=ack, flags=flags, window=65535
        )
        if payload:
            packet = packet / Raw(payload)
        self.seq[from_client] += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        return packet

    def packets(self, transcript: Transcript) -> list[Packet]:
        out = [self._segment(True, "S"), self._segment(False, "SA"), self._segment(True, "A")]
        for from_client, data in transcript.chunks:
            for at in range(0, len(data), _MSS):
                out.append(self._segment(from_client, "PA", data[at : at + _MSS]))
        out.append(self._segment(True, "FA"))
        out.append(self._segment(False, "FA"))
        out.append(self._segment(True, "A"))
        return out
