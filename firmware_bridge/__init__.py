"""The firmware bridge: wire protocol, host link, display and audio encoding, device simulator, C core.

    python -c "import firmware_bridge.frame as f; print(f.encode(f.Message(type=3, payload=b'hi')).hex())"

Data flows one way: generator events -> ``stream.Streamer`` -> ``display``/``audio`` encoders ->
``link.HostSession`` (the pure protocol state machine; it also cuts the sound into chunks under the
device's credit) -> ``frame`` bytes -> a ``link.PumpedLink`` (``Link`` on a pyserial port, or
``virtual.VirtualLink`` in process) -> the device (``device.DeviceCore``, run by ``simulator.Simulator``,
or the C core in ``firmware/``; a Game Boy through ``gameboy/``). ``live.py`` is the one path
``stream`` and ``demo`` take from a generation to a device; ``transports.py`` is the one place a port
URL's scheme is read and a device kind chosen.
"""
