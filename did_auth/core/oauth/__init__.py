"""The OAuth 2.0 core of did-auth: client authentication, the token endpoint's grants,
revocation. Pure: it receives settings, a store and a clock, never a web framework."""
