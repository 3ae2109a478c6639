"""Training loops shared by every encoder variant: MLM pre-training and fine-tuning."""
