"""Model registry, preprocessing, ONNX runtime and scoring."""

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "AI scoring"
