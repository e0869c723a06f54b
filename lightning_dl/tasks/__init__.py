"""The LightningModules (frame/image classifier, CTC recogniser) and their optimizer wiring."""
