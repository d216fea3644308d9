"""Who is calling: identity modes (entra, kubernetes, static, none) behind one ``CallerAuth``."""
