"""Front doors where usage arrives (Ro/Rf agent, ...). They translate; the engine decides."""
