{
  description = "nixos-desync: the desync upgrade loop and its Prometheus exporter for NixOS";

  # Only used for packages.* and checks.*: the NixOS module builds the package with the
  # system's own nixpkgs (pkgs.callPackage ./nix/package.nix { }).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        nixos-desync = pkgs.callPackage ./nix/package.nix { };
        default = nixos-desync;
      });

      overlays.default = final: _prev: {
        nixos-desync = final.callPackage ./nix/package.nix { };
      };

      nixosModules.default = ./nix/module.nix;
      nixosModules.nixos-desync = ./nix/module.nix;

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        vm-test = import ./nix/tests/vm-test.nix {
          inherit pkgs;
          module = self.nixosModules.default;
        };
      });
    };
}
