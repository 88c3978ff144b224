"""The firmware bridge: wire protocol, host link, display and audio encoding, device simulator, C core.

    python -c "import firmware_bridge.frame as f; print(f.encode(f.Message(type=3, payload=b'hi')).hex())"

Data flows one way: generator events -> ``stream.Streamer`` -> ``display``/``audio`` encoders ->
``link.Link`` (``link.HostSession`` is the pure protocol state machine) -> ``frame`` bytes -> a
pyserial port -> the device (``simulator.DeviceCore`` or the C core in ``firmware/``).
"""
