"""Configuration: the typed `Settings` (`settings`), its section models (`models`) and the
strict checks with their messages (`check`). The core reads settings as plain values."""
