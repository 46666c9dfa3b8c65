"""Plain nn.Modules: generators, discriminators, encoders and decoders."""
