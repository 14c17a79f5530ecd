"""Models: the hybrid CNN-LSTM (PyTorch) and the scikit-learn baselines it must beat."""

from ml.models.hybrid_cnn_lstm import (
    AttentionLayer,
    CNNBlock,
    HybridCNNLSTM,
    ModelConfig,
    ModelOutput,
    create_model,
)

__all__ = ["AttentionLayer", "CNNBlock", "HybridCNNLSTM", "ModelConfig", "ModelOutput", "create_model"]
