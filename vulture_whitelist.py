"""Names vulture reports as unused that are kept, each with its reason (`make lint` runs vulture at 80 %;
this file also keeps `vulture --min-confidence 60` over the four packages clean).

    .venv/bin/vulture                      # paths and confidence from [tool.vulture] in pyproject.toml
    .venv/bin/vulture --min-confidence 60  # the wider net: every entry below is one of its findings

Read by vulture only (``_`` is never defined): an entry is a use of the name. A name that is no longer
needed is deleted from the code, not added here.
"""

# -- protocols Python or a library calls by name --------------------------------------------------------------
_.exc_type  # __exit__(self, exc_type, exc, tb): the context-manager protocol's arguments (atomic.OutputSet)
_.tb  # the same
_.__hash__  # events.py sets the kind-aware comparison on each NamedTuple record class (Python calls it)
_.__ne__  # the same: the comparison protocol
_.forward  # torch.nn.Module.forward: what calling a module runs (training/model.py, quantize/step.py)
_.list_commands  # click.Group: cli.LazyGroup lists the entry-point commands for --help
_.get_command  # click.Group: cli.LazyGroup imports a command's module when it runs
_.color  # click.Context.color: -q/-v set it for the whole invocation (cli.py)
_.benchmark  # torch.backends.cudnn.benchmark: a switch torch reads (training/train.py)
_.intra_op_num_threads  # onnxruntime.SessionOptions fields the session reads (backends/onnx.py)
_.inter_op_num_threads
_.execution_mode
_.graph_optimization_level
_.log_severity_level
_.max_speed_hz  # spidev.SpiDev fields the driver reads (gameboy/spi.py)
_.bits_per_word
_.lsbfirst
_.timeout  # serial.Serial.timeout: pyserial reads it on every read (simulator.SerialTransport)
_._context_buffer  # backends/base.py caches the buffer in the instance __dict__ (read back through __dict__.get)

# -- looked up by name: entry points, dispatch tables, the transport table ---------------------------------------
_.tokenize  # pyproject.toml [project.entry-points."pxby_edge.commands"]: found by cli.LazyGroup, never imported
_.detokenize
_.inspect
_.generate
_.demo
_.torch_specs  # pyproject.toml [project.entry-points."pxby_edge.bench_rows"] (training/bench_rows.py)
_.row_step  # bench.py: a row's kind names its function ("row_" + kind), run in a child process
_.row_generate
_.row_torch  # training/bench_rows.py: the same for the PyTorch rows
_.row_upstream
_.open_url  # transports.GAMEBOY_TRANSPORTS names each Game Boy transport's opener as "module:open_url"
_._do_reset  # device.DeviceCore dispatches each message type to "_do_" + its name
_._do_palette
_._do_tiles
_._do_map_rect
_._do_commit
_._do_text
_._do_audio_cfg
_._do_audio_chunk
_._tiles  # difftest.py: the random message maker dispatches "_" + the message's name
_._map_rect
_._commit
_._palette
_._reset
_._audio_cfg

# -- one side of a format another side reads (the C core, the ROM, a file format) ------------------------------
_.CH_LOG  # protocol.py mirrors firmware/pxby_protocol.h: the device's LOG channel, which the host ignores
_.bpp  # protocol.Capabilities: a HELLO_ACK field, checked through stream_needs' "bpp" by name
_.LCDC_BASE  # gameboy/packets.py emits it into rom/packets.h (--c-header lists the names it exports)
_.is_variable  # tflite_file.py: TFLite schema fields read so a Tensor is the whole schema entry
_.shape_signature
_.builtin_options_type
_.n_actions  # vocab.Vocab: the action-state count beside n_bytes and n_palette (set in __post_init__, for readers)

# -- test and benchmark support: figures and hooks the package keeps for tests/ and bench/ ---------------------
_.restart  # simulator.Simulator.restart: a power cycle, for the reset-recovery tests (tests/test_bridge_pty.py)
_.wait_until  # simulator.Simulator.wait_until: tests wait on the device thread with it
_.replayed  # simulator.Capture: samples played twice, a figure the pty and C-core tests assert on
_.ready_since  # link.HostSession: when the last handshake ended; the recovery test measures from it
_.exchanges  # gameboy.pyboy_link.SerialPeer: link bytes exchanged (tests, bench/bench_gameboy.py)
_.ticks  # gameboy.pyboy_link.PyBoyPort: emulated frames run (bench/bench_gameboy.py)
_.sound_start  # gameboy.session.GameBoyLink: where the cry starts in the capture (tests, bench_gameboy.py)
_.crash_traces  # difftest.crash_traces: the recorded crash sequences tests/test_device_diff.py replays
_.BAD_REASONS  # frame.py: every reason a BadFrame can carry; tests/test_bridge_frame.py checks each occurs
_.VECTORS  # gameboy/packets.py: the packet codec's vectors; tests hold the C side of the ROM to them
_.tensor_by_name  # tflite_file.TFLiteFile: a lookup by tensor name, used by tests/test_tflite_file.py
_.state_real  # backends' state as floats, for bench/bench_runtime.py's state-drift figures
_.set_state  # backends' get_state/set_state: branching a stream from a saved state (tests/test_backends.py)
_.position  # context.ContextBuilder.position: where the next token lands (the docstring's example, tests)
_.generate_palette  # vocab.generate_palette: upstream's HSV palette, for tokenizers built like upstream's (tests)
_.nearest_round  # quantize/rounding.py: the round-to-nearest baseline GPTQ is measured against (tests)
_.skipped_ids  # training/data.Streams: which items were skipped and why (tests; the summary counts them)
_.ROW_KEYS  # bench.py: the keys every row carries, the contract tests/test_bench.py checks
_.run_upstream_loop  # training/upstream_loop.py: the upstream training loop bench/bench_train.py compares with
_.priority  # mTimingEvent.priority: mGBA's scheduler reads it (gameboy/mgba_link.py)
_.completed_at  # mgba_link.MgbaPort: when the port last took a byte whole; bench_gameboy_timing.py --rearm times from it
_.power_cycle  # pyboy_link / mgba_link ports: a Game Boy switched off and on mid-stream (tests/test_gameboy_timing.py)
_.inject  # the same ports: another host's bytes on the line (the foreign-HELLO tests)
_.extra_edge  # mgba_link.MgbaPort: a stray clock edge (the stray-edge tests)
