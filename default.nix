# For channel (non-flake) users:
#   nix-build                      the package (./result/bin/nixos-desync)
#   nix-build -A tests.vm-test     the NixOS VM test (needs KVM)
# and in configuration.nix:
#   imports = [ /path/to/nixos-desync/nix/module.nix ];
# (the module builds its package from this checkout with the system's own nixpkgs).
{
  pkgs ? import <nixpkgs> { },
}:
let
  package = pkgs.callPackage ./nix/package.nix { };
in
package
// {
  inherit package;
  module = ./nix/module.nix;
  tests.vm-test = import ./nix/tests/vm-test.nix { inherit pkgs; };
}
