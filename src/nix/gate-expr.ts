// The Nix expression that evaluates every desync's requireBuilds in one evaluation. It is a
// constant: user data reaches it only as JSON read from `specFile` (passed with --argstr),
// never interpolated into Nix code. With `strict = true` errors propagate (for diagnostics).
export const GATE_EXPR = String.raw`
{ specFile, strict ? "false" }:
let
  spec = builtins.fromJSON (builtins.readFile specFile);
  isStrict = strict == "true";
  # tryShallow forces only to weak head normal form (never deepSeq a whole nixpkgs).
  tryShallow = v: if isStrict then { success = true; value = v; } else builtins.tryEval v;
  tryDeep = v: tryShallow (builtins.deepSeq v v);
  lookup = set: path:
    if path == [ ] then { ok = true; value = set; }
    else
      let h = builtins.head path; in
      if builtins.isAttrs set && builtins.hasAttr h set
      then lookup (builtins.getAttr h set) (builtins.tail path)
      else { ok = false; error = "attribute '" + h + "' missing"; };
  evalAttr = pkgs: attr:
    let
      r = tryShallow (lookup pkgs (builtins.filter builtins.isString (builtins.split "\\." attr)));
      v = r.value.value;
      d = tryDeep (
        if builtins.isAttrs v && v ? drvPath
        then { ok = true; drvPath = v.drvPath; outputs = map (o: (builtins.getAttr o v).outPath) (v.outputs or [ "out" ]); }
        else { ok = false; error = "not a derivation"; });
    in
    if !r.success then { ok = false; error = "evaluation failed"; }
    else if !r.value.ok then { ok = false; error = r.value.error; }
    else if !d.success then { ok = false; error = "evaluation failed"; }
    else d.value;
  # The same nixpkgs arguments as the system's import of a desync (nix/module/desyncs.nix): an explicit
  # system and no ambient overlays (~/.config/nixpkgs/overlays, <nixpkgs-overlays>), so the
  # gate builds exactly the packages the system will use.
  systemOf = d: if d ? system && d.system != null then d.system else builtins.currentSystem;
  # One nixpkgs instance per distinct (nixpkgs, config, system): desyncs sharing them share its cost.
  pkgsKey = d: d.nixpkgs + "\n" + builtins.toJSON d.config + "\n" + systemOf d;
  imported = builtins.listToAttrs (map (d: { name = pkgsKey d; value = tryShallow (import d.nixpkgs { config = d.config; overlays = [ ]; system = systemOf d; }); })
    (builtins.attrValues spec.desyncs));
  evalDesync = d:
    let p = builtins.getAttr (pkgsKey d) imported; in
    if !p.success then { ok = false; error = "importing nixpkgs with this desync's nixpkgsConfig failed"; }
    else { ok = true; attrs = builtins.listToAttrs (map (a: { name = a; value = evalAttr p.value a; }) d.attrs); };
in
builtins.mapAttrs (n: d: evalDesync d) spec.desyncs
`;
