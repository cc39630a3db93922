import os

import numpy as np

from asr.caches import FeatureCache, MemoryCache
from asr.config import FeatureConfig

FEATURES = FeatureConfig(n_mels=40)


def test_feature_cache_is_keyed_by_file_speed_and_features(tmp_path, tone_wav):
    path = str(tone_wav("a.wav", seconds=0.3))
    cache = FeatureCache(tmp_path / "cache", FEATURES)
    values = np.arange(6, dtype=np.float32).reshape(3, 2)
    cache.save(path, 1.0, values)
    np.testing.assert_array_equal(cache.load(path, 1.0), values)
    assert cache.load(path, 1.1) is None
    assert FeatureCache(tmp_path / "cache", FeatureConfig(n_mels=41)).load(path, 1.0) is None
    os.utime(path, ns=(0, 0))  # the file changed
    assert cache.load(path, 1.0) is None


def test_the_memory_cache_is_bounded():
    cache = MemoryCache(12)
    cache.put("a", np.zeros(3, np.float32))
    cache.put("b", np.zeros(1, np.float32))  # 12 + 4 bytes > 12: not kept
    cache.put("c", (1, 2), nbytes=0)
    assert cache.get("a") is not None and cache.get("b") is None and cache.get("c") == (1, 2)
    assert cache.bytes == 12
