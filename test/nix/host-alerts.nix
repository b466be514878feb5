# The Prometheus host: imports the module for its rule files only (nothing enabled), with the
# runbook base the test passes (absent: the default).
{ lib, testArgs, ... }:
{
  services.nixos-desync.alerts = lib.optionalAttrs (testArgs ? runbookBaseUrl) { inherit (testArgs) runbookBaseUrl; };
}
