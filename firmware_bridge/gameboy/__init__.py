"""A real Game Boy as the handheld: the link-port ROM (rom/, pxby-link.gb), its link layer and transports.

    python -m firmware_bridge.gameboy.packets --c-header    # prints rom/packets.h
"""

from pathlib import Path

ROM_PATH = Path(__file__).with_name("pxby-link.gb")
