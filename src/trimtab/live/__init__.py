"""Live execution: venue adapters (:mod:`trimtab.live.adapters`) and credential handling
(:mod:`trimtab.secrets`). The live loop, replay feed and crash-safe state build on these."""
