"""From CTC logits to text: `ctc` (best path, forced alignment), `decode` (greedy, beam + LM,
hotwords, lexicon), `lm` (n-gram LM, Kneser-Ney) and `decoder_config` (which decoder)."""
