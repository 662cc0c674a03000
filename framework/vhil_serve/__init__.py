"""Host-side launcher for the DUT app (`vhil serve`): not deployed to boards."""
