"""CPU kernel templates. Their free names ``act0``, ``act1``... are bound by ``codegen``."""
