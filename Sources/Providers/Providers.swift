/// The model-provider boundary: filled in by the chat feature.
enum ProvidersModule {}
