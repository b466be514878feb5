# alerts.*: the shipped Prometheus rule files, with their runbook links pointing at your copy of
# docs/runbooks.md. For the Prometheus host: it may import this module without enabling the rest.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types literalExpression;
  cfg = config.services.nixos-desync.alerts;
  # What alerts/*.yml ship: a base under the reserved .invalid domain, so an unconfigured link
  # is visibly a placeholder and never reaches a stranger's host.
  placeholder = "https://nixos-desync.invalid/docs/runbooks.md";
  files = [
    "nixos-desync.rules.yml"
    "nixos-desync-fleet.rules.yml"
    "nixos-desync-rollout.rules.yml"
  ];
  # Read from this module's own source tree: the rules always match the module's version.
  render =
    name:
    pkgs.writeText name (
      builtins.replaceStrings [ placeholder ] [ cfg.runbookBaseUrl ] (builtins.readFile (../../alerts + "/${name}"))
    );
in
{
  options.services.nixos-desync.alerts = {
    runbookBaseUrl = mkOption {
      # Spliced into double-quoted YAML strings and followed by `#<anchor>`: no quote, backslash,
      # `#` or white space.
      type = types.strMatching ''[a-z][a-z0-9+.-]*://[^#"\\[:space:]]+'';
      default = placeholder;
      example = "https://git.example.com/ops/nixos-desync/src/branch/main/docs/runbooks.md";
      description = ''
        Where your copy of docs/runbooks.md is served (a wiki, your Git forge, an internal docs
        site). Every alert of `alerts.ruleFiles` links to `<runbookBaseUrl>#<alert name in lower
        case>`, e.g. `…/runbooks.md#nixosdesyncmaxagebreached`. The default is a placeholder under
        the reserved `.invalid` domain, which never resolves: set it.
      '';
    };
    ruleFiles = mkOption {
      type = types.listOf types.path;
      readOnly = true;
      default = map render files;
      defaultText = literalExpression ''
        [ nixos-desync.rules.yml nixos-desync-fleet.rules.yml nixos-desync-rollout.rules.yml ]
        # from alerts/, runbook links under runbookBaseUrl'';
      description = ''
        The shipped rule files (alerts, fleet and rollout recording rules) with their runbook links
        under `alerts.runbookBaseUrl`, for the Prometheus that scrapes the exporters:
        `services.prometheus.ruleFiles = config.services.nixos-desync.alerts.ruleFiles;`.
      '';
    };
  };
}
