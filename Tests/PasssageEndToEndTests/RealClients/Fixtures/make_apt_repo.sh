#!/usr/bin/env bash
# Publishes a small signed Debian repository in ROOT (suite "stable", component "main", amd64):
# two .debs at VERSION built with dpkg-deb, Packages(.gz|.xz) from apt-ftparchive, by-hash copies
# of every index, Release, InRelease and Release.gpg signed with a key made on first use
# (ROOT/../apt-gnupg). Run it again with another VERSION to republish: the new packages are added,
# the indexes replaced, the old by-hash files kept (as Debian's archive keeps them a while).
# METADATA_AGE_SECONDS back-dates the indexes' modification times, like a mirror that last
# synced a while ago.
# Usage: make_apt_repo.sh ROOT VERSION [METADATA_AGE_SECONDS]
# Prints the path of the public keyring apt should use (signed-by).
set -euo pipefail
root=$1 version=$2 age=${3:-0}
work=$(dirname "$root")/apt-build
gnupg=$(dirname "$root")/apt-gnupg
mkdir -p "$root/pool/main" "$root/dists/stable/main/binary-amd64" "$work"

export GNUPGHOME=$gnupg
# gpg starts an agent for the key; it must not outlive the script.
trap 'gpgconf --kill all >/dev/null 2>&1 || true' EXIT
if [ ! -d "$gnupg" ]; then
    mkdir -m 700 "$gnupg"
    gpg --batch --quiet --passphrase '' --quick-gen-key "passsage test archive <archive@passsage.test>" ed25519 sign never
fi
gpg --batch --quiet --export > "$(dirname "$root")/apt-keyring.gpg"

for package in passsage-hello passsage-tool; do
    staging=$work/${package}_$version
    rm -rf "$staging"
    mkdir -p "$staging/DEBIAN" "$staging/usr/share/$package"
    cat > "$staging/DEBIAN/control" <<CONTROL
Package: $package
Version: $version
Architecture: all
Maintainer: passsage tests <tests@passsage.test>
Description: passsage test package $package
CONTROL
    echo "$package $version" > "$staging/usr/share/$package/version"
    head -c 200000 /dev/urandom > "$staging/usr/share/$package/payload"
    dpkg-deb --root-owner-group -Zxz --build "$staging" "$root/pool/main/${package}_${version}_all.deb" >/dev/null
done

cd "$root"
binary=dists/stable/main/binary-amd64
apt-ftparchive packages pool/main > "$binary/Packages"
gzip -9 -n -k -f "$binary/Packages"
xz -k -f "$binary/Packages"
for algorithm in SHA256 SHA512 MD5Sum; do
    mkdir -p "$binary/by-hash/$algorithm"
done
for file in "$binary/Packages" "$binary/Packages.gz" "$binary/Packages.xz"; do
    cp "$file" "$binary/by-hash/SHA256/$(sha256sum "$file" | cut -d' ' -f1)"
    cp "$file" "$binary/by-hash/SHA512/$(sha512sum "$file" | cut -d' ' -f1)"
    cp "$file" "$binary/by-hash/MD5Sum/$(md5sum "$file" | cut -d' ' -f1)"
done
apt-ftparchive \
    -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
    -o APT::FTPArchive::Release::Origin=passsage -o APT::FTPArchive::Release::Label=passsage \
    -o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main \
    -o APT::FTPArchive::Release::Acquire-By-Hash=yes \
    -o "APT::FTPArchive::Release::Patterns::=Packages*" \
    release -o APT::FTPArchive::Release::Default-Patterns=false dists/stable > "$work/Release"
mv "$work/Release" dists/stable/Release
rm -f dists/stable/InRelease dists/stable/Release.gpg
gpg --batch --quiet --yes --clearsign -o dists/stable/InRelease dists/stable/Release
gpg --batch --quiet --yes --detach-sign --armor -o dists/stable/Release.gpg dists/stable/Release
if [ "$age" -gt 0 ]; then
    stamp=$(date -u -d "@$(( $(date +%s) - age ))" +%Y%m%d%H%M.%S)
    find dists -type f -exec touch -t "$stamp" {} +
fi
echo "$(dirname "$root")/apt-keyring.gpg"
