# GPU image for training and transcription; the base matches the pinned TensorFlow.
FROM tensorflow/tensorflow:2.21.0-gpu
WORKDIR /opt/asr
COPY pyproject.toml README.md ./
COPY asr ./asr
COPY configs ./configs
COPY pipelines ./pipelines
RUN python3 -m pip install --no-cache-dir .
ENTRYPOINT ["asr"]
CMD ["--help"]
