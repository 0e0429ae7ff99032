"""Runs libespeak-ng for `core.corpus.speech` in a fresh process, one synthesis per process.

The library keeps state from one synthesis to the next (a clause pause and phone durations drift by
milliseconds, the noise differs), so only the first synthesis of a process is reproducible. This
script imports nothing but the standard library, so it starts in a few milliseconds.

stdin:  JSON {"text": str, "voice": str, "parameters": {"<espeak_PARAMETER>": value, ...}};
        "voice": null only reports the data path.
stdout: JSON {"sample_rate": int, "data_path": str, "events": [[audio position ms, mnemonic], ...],
        "samples": base64 of the native-endian int16 samples}.
Exit status 3: libespeak-ng is missing or cannot start; 4: no such voice; 5: synthesis failed
(the reason on stderr).
"""

import base64
import ctypes
import ctypes.util
import json
import sys

# From espeak-ng's public header speak_lib.h (API revision 12).
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
CHARS_UTF8 = 1
POS_CHARACTER = 1
EVENT_LIST_TERMINATED, EVENT_PHONEME = 0, 7
EXIT_MISSING, EXIT_NO_VOICE, EXIT_FAILED = 3, 4, 5


class EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class Event(ctypes.Structure):
    """espeak_EVENT."""

    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", EventId),
    ]


SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))


def fail(status: int, message: str) -> None:
    """Exit with `status`, `message` on stderr."""
    sys.stderr.write(message + "\n")
    sys.exit(status)


def main() -> None:
    """Answer one request from stdin on stdout (see the module docstring)."""
    request = json.loads(sys.stdin.read())
    path = ctypes.util.find_library("espeak-ng")
    if path is None:
        fail(EXIT_MISSING, "libespeak-ng is not installed")
    try:
        lib = ctypes.CDLL(path)
    except OSError as err:
        fail(EXIT_MISSING, f"libespeak-ng ({path}) could not be loaded: {err}")
    sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_PHONEME_EVENTS)
    if sample_rate <= 0:
        fail(EXIT_MISSING, "libespeak-ng could not start (no espeak-ng-data found)")
    data_path = ctypes.c_char_p()
    lib.espeak_Info(ctypes.byref(data_path))
    samples, events = bytearray(), []

    def collect(wave: ctypes.Array, count: int, found: ctypes.Array) -> int:
        if wave and count > 0:
            samples.extend(ctypes.string_at(wave, 2 * count))
        index = 0
        while found[index].type != EVENT_LIST_TERMINATED:
            if found[index].type == EVENT_PHONEME:
                events.append([found[index].audio_position, found[index].id.string.decode("utf-8", "replace")])
            index += 1
        return 0

    callback = SynthCallback(collect)
    lib.espeak_SetSynthCallback(callback)
    if request["voice"] is not None:
        if lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
            fail(EXIT_NO_VOICE, f"espeak-ng has no voice {request['voice']!r}")
        for parameter, value in request["parameters"].items():
            lib.espeak_SetParameter(int(parameter), int(value), 0)
        text = request["text"].encode()
        status = lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if status != 0:
            fail(EXIT_FAILED, f"espeak_Synth failed with status {status}")
    json.dump({"sample_rate": sample_rate, "data_path": data_path.value.decode(), "events": events,
               "samples": base64.b64encode(bytes(samples)).decode("ascii")}, sys.stdout)


if __name__ == "__main__":
    main()
