"""Static pages of did-auth: the hosted sign-in page, the demo dApp, the JS client module."""
