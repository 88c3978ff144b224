"""The link ROM: a valid cartridge header, a reproducible build, the C header generated from packets.py.

    python -m pytest -q tests/test_gameboy_rom.py
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from firmware_bridge.gameboy import ROM_PATH
from firmware_bridge.gameboy import packets as gl

GB_DIR = ROM_PATH.parent

# The boot ROM compares these 48 bytes at 0x104 and locks up if they differ (Pan Docs, "The Cartridge Header").
NINTENDO_LOGO = bytes.fromhex(
    "CEED6666CC0D000B03730083000C000D0008111F8889000EDCCC6EE6DDDDD999BBBB67636E0EECCCDDDC999FBBB9333E"
)


def header_checksum(rom: bytes) -> int:
    x = 0
    for b in rom[0x134:0x14D]:
        x = (x - b - 1) & 0xFF
    return x


def global_checksum(rom: bytes) -> int:
    return (sum(rom) - rom[0x14E] - rom[0x14F]) & 0xFFFF


def test_shipped_rom_has_a_header_the_boot_rom_accepts():
    rom = ROM_PATH.read_bytes()
    assert len(rom) == 32768  # one 32 KiB bank, no mapper (cartridge type 0)
    assert rom[0x104:0x134] == NINTENDO_LOGO
    assert rom[0x134:0x13D] == b"PXBY-LINK"
    assert rom[0x147] == 0x00 and rom[0x148] == 0x00  # ROM only, 32 KiB
    assert rom[0x14D] == header_checksum(rom)
    assert int.from_bytes(rom[0x14E:0x150], "big") == global_checksum(rom)
    assert rom[0x100] == 0x00 and rom[0x101] == 0xC3  # nop; jp init
    assert rom[0x58] == 0xC3  # the serial vector jumps to the handler


def test_a_corrupted_rom_fails_the_checksums():
    rom = bytearray(ROM_PATH.read_bytes())
    rom[0x200] ^= 0xFF
    assert int.from_bytes(rom[0x14E:0x150], "big") != global_checksum(bytes(rom))
    rom[0x140] ^= 0x01
    assert rom[0x14D] != header_checksum(bytes(rom))


def test_committed_link_header_is_generated_from_link_py():
    assert (GB_DIR / "rom" / "packets.h").read_text() == gl.c_header()


@pytest.mark.skipif(shutil.which("sdcc") is None, reason="sdcc is not installed (apt-get install sdcc; .ci/run does)")
def test_rebuilding_gives_the_shipped_rom_byte_for_byte(tmp_path):
    out = tmp_path / "pxby-link.gb"
    subprocess.run(["make", "-s", "-C", str(GB_DIR), f"BUILD={tmp_path / 'build'}", f"OUT={out}"], check=True,
                   capture_output=True, text=True)
    assert out.read_bytes() == ROM_PATH.read_bytes(), "the shipped ROM differs: run make -C firmware_bridge/gameboy and commit it"
