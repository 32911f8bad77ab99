"""Links: how a node puts frames on a bearer. A leaf package: it knows nothing of the node."""

from transports.link import (
    DEFAULT_EVENT_BUFFER,
    FrameReceived,
    FrameTooLarge,
    Link,
    LinkError,
    LinkEvent,
    PeerDown,
    PeerUnavailable,
    PeerUp,
    format_endpoint,
    parse_endpoint,
)
from transports.memory import MemoryLink, memory_link_pair
from transports.profile import MTU_MAX, MTU_MIN, BearerProfile
from transports.tcp import Backoff, FrameDecoder, FramingError, TcpLink, encode_frame
from transports.udp import UdpLink

__all__ = [
    "DEFAULT_EVENT_BUFFER",
    "MTU_MAX",
    "MTU_MIN",
    "Backoff",
    "BearerProfile",
    "FrameDecoder",
    "FrameReceived",
    "FrameTooLarge",
    "FramingError",
    "Link",
    "LinkError",
    "LinkEvent",
    "MemoryLink",
    "PeerDown",
    "PeerUnavailable",
    "PeerUp",
    "TcpLink",
    "UdpLink",
    "encode_frame",
    "format_endpoint",
    "memory_link_pair",
    "parse_endpoint",
]
