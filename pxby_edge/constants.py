"""Facts more than one layer needs, each defined once here (no imports: the CLI reads them at --help time).

    python -c "from pxby_edge import constants as c; print(c.DEVICE_AUDIO_RATE, c.BACKEND_NAMES)"

docs/ARCHITECTURE.md ("Following the audio rate") traces how the rates below travel from a dataset to
the speaker.
"""

# The rate the handheld's and the Game Boy's speaker play, and the rate of the speaker filter the dataset's
# second audio channel models (docs/protocol.md: HELLO_ACK's audio_rate). The C core's PXBY_DEV_AUDIO_RATE (firmware/pxby_core.h) must
# agree: the differential test (firmware_bridge/difftest.py) compares the two cores' HELLO_ACKs byte for byte.
DEVICE_AUDIO_RATE = 8192

# The upstream PixelBytes dataset's audio rate: what a .npy array without a rate is taken to be, and what a
# model file from an upstream checkpoint (which records no rate) is read as (``generate.audio_rate_of``).
UPSTREAM_AUDIO_RATE = 16000

# The highest sample rate a token file or a command option may claim (a WAV writer's and a sound card's ceiling).
MAX_AUDIO_RATE = 384000

# The interpreters ``--backend`` takes besides ``auto``, in ``auto``'s order of preference (pxby_edge/backends/).
BACKEND_NAMES = ("litert", "tflite", "onnx", "numpy")

# The prompt when none is given: a whole description in the training style (so the text is closed there).
DEFAULT_PROMPT = "a small blue water creature with horns and a tail. it is blue."
