//! Where `images.blob_url` says the files go: a folder (`data/blobs`, `file://data/blobs`,
//! `file:///var/lib/shop/blobs`) or an S3-compatible bucket
//! (`s3://BUCKET/PREFIX?endpoint=https://…&region=…`).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    Folder(PathBuf),
    S3(S3Location),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Keys are stored under it (no leading or trailing `/`); empty for the bucket's root.
    pub prefix: String,
    /// The server's address (Spaces: `https://REGION.digitaloceanspaces.com`); AWS when absent.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl BlobLocation {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("must name a folder or an s3:// bucket".into());
        }
        if let Some(path) = text.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// needs a folder, e.g. file://data/blobs".into());
            }
            return Ok(Self::Folder(PathBuf::from(path)));
        }
        if text.starts_with("s3://") {
            return parse_s3(text).map(Self::S3);
        }
        match text.split_once("://") {
            Some((scheme, _)) => Err(format!(
                "unsupported scheme {scheme:?}: expected a folder, file://FOLDER or \
                 s3://BUCKET/PREFIX?endpoint=…&region=…"
            )),
            None => Ok(Self::Folder(PathBuf::from(text))),
        }
    }
}

fn parse_s3(text: &str) -> Result<S3Location, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        // The URL is logged; keys belong in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the
        // images.blob_access_key_id / images.blob_secret_access_key settings.
        return Err("must not carry credentials: set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY (or images.blob_access_key_id and \
             images.blob_secret_access_key)"
            .into());
    }
    let bucket = url
        .host_str()
        .filter(|bucket| !bucket.is_empty())
        .ok_or("s3:// needs a bucket, e.g. s3://shop-images")?
        .to_owned();
    let prefix = url.path().trim_matches('/').to_owned();
    let mut location = S3Location {
        bucket,
        prefix,
        endpoint: None,
        region: None,
    };
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "endpoint" => {
                let endpoint = url::Url::parse(&value)
                    .ok()
                    .filter(|e| matches!(e.scheme(), "http" | "https") && e.has_host())
                    .ok_or_else(|| format!("endpoint {value:?} is not an http(s):// address"))?;
                location.endpoint = Some(endpoint.as_str().trim_end_matches('/').to_owned());
            }
            "region" if !value.is_empty() => location.region = Some(value.into_owned()),
            other => {
                return Err(format!(
                    "unknown option {other:?}: s3:// takes endpoint= and region="
                ));
            }
        }
    }
    Ok(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_or_a_file_url_names_a_folder() {
        for (text, folder) in [
            ("data/blobs", "data/blobs"),
            ("/var/lib/shop", "/var/lib/shop"),
            ("file://data/blobs", "data/blobs"),
            ("file:///var/lib/shop", "/var/lib/shop"),
        ] {
            assert_eq!(
                BlobLocation::parse(text).unwrap(),
                BlobLocation::Folder(PathBuf::from(folder)),
                "{text}"
            );
        }
    }

    #[test]
    fn an_s3_url_names_bucket_prefix_endpoint_and_region() {
        let location = BlobLocation::parse(
            "s3://shop/img/v1/?endpoint=https://ams3.digitaloceanspaces.com/&region=ams3",
        )
        .unwrap();
        assert_eq!(
            location,
            BlobLocation::S3(S3Location {
                bucket: "shop".into(),
                prefix: "img/v1".into(),
                endpoint: Some("https://ams3.digitaloceanspaces.com".into()),
                region: Some("ams3".into()),
            })
        );
        let BlobLocation::S3(bare) = BlobLocation::parse("s3://shop").unwrap() else {
            panic!("not s3")
        };
        assert_eq!((bare.prefix.as_str(), bare.endpoint), ("", None));
    }

    #[test]
    fn a_bad_url_is_refused_with_the_reason_and_without_a_secret() {
        for (text, why) in [
            ("", "must name"),
            ("gs://bucket", "unsupported scheme \"gs\""),
            ("s3://", "needs a bucket"),
            ("s3://b?endpoint=ftp://x", "not an http(s)"),
            ("s3://b?endpoint=nonsense", "not an http(s)"),
            ("s3://b?acl=public", "unknown option \"acl\""),
            ("file://", "needs a folder"),
        ] {
            let error = BlobLocation::parse(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
        let error = BlobLocation::parse("s3://AKIA:topsecret@bucket/x").unwrap_err();
        assert!(error.contains("AWS_SECRET_ACCESS_KEY"), "{error}");
        assert!(!error.contains("topsecret"), "{error}");
    }
}
