"""TensorFlow's start without its native start-up lines.

Importing TensorFlow prints oneDNN, CUDA-stub and CPU-feature lines, and finding
devices on a machine without a GPU prints `E0000 ... failed call to cuInit`,
which reads as a failure to anyone new. Native code writes them straight to file
descriptor 2 before absl logging is set up, so TF_CPP_MIN_LOG_LEVEL does not
stop them and neither can Python's sys.stderr. The wheel prints the import lines
twice, in one process: `tensorflow.python.profiler.internal._pywrap_profiler_plugin`,
which `import tensorflow` loads eagerly, carries its own copy of the code that
prints them. Once logging is set up, TF_CPP_MIN_LOG_LEVEL=3 silences the rest
(such as "E0000 ... oneDNN supports DT_BOOL only on platforms with AVX-512"
when training starts); the command line sets it unless --verbose.
"""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and discover its devices with file descriptor 2 silenced.

    What was silenced is written to stderr after all if the import fails.
    A no-op once TensorFlow is imported.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # device discovery logs now, not on first use
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            sys.stderr.flush()
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
